// Golden values for every optimizer: three steps from w = 1 with the fixed
// gradients 0.5, −0.25, 1.0. The numbers were derived by hand from the
// formulas in UpdateRule.swift and reproduced in Double by this generator:
//
//   def adam(w, gs, lr, b1=0.9, b2=0.999, eps=1e-7, wd=0):
//       m = v = 0
//       for t, g in enumerate(gs, 1):
//           w -= lr * wd * w
//           m += (g - m) * (1 - b1); v += (g * g - v) * (1 - b2)
//           w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)
//   def rmsprop(w, gs, lr, rho=0.9, eps=1e-7, mom=0):
//       v = m = 0
//       for g in gs:
//           v = rho * v + (1 - rho) * g * g; d = lr * g / sqrt(v + eps)
//           if mom: m = mom * m + d; w -= m
//           else: w -= d
//   def sgd(w, gs, lr, mom=0, nesterov=False):
//       m = 0
//       for g in gs:
//           if mom == 0: w -= lr * g
//           else: m = mom * m - lr * g; w += mom * m - lr * g if nesterov else m

import XCTest
@testable import NNCore

final class OptimizerTests: XCTestCase {
    let cpu = CPUAccelerator(threads: 1)
    let gradients: [Float] = [0.5, -0.25, 1.0]

    /// Runs the three steps on 19 identical parameters (so both the 8-wide
    /// vector path and the scalar tail run) and returns the trajectory,
    /// failing if any parameter strays from the first.
    func run(_ rule: UpdateRule, rate: Float, weightDecay: Float = 0) -> [Float] {
        let n = 19
        let parameters = cpu.tensor([Float](repeating: 1, count: n), rows: 1, columns: n)
        let optimizer = Optimizer(rule: rule, schedule: LearningRateSchedule(initialRate: rate), weightDecay: weightDecay,
                                  parameterCount: n, accelerator: cpu)
        return gradients.map { g in
            optimizer.apply(parameters: parameters, gradients: cpu.tensor([Float](repeating: g, count: n), rows: 1, columns: n))
            let values = cpu.values(parameters)
            XCTAssertTrue(values.allSatisfy { $0 == values[0] }, "\(rule): \(values)")
            return values[0]
        }
    }

    func assertClose(_ actual: [Float], _ expected: [Double], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (a, e) in zip(actual, expected) {
            XCTAssertEqual(Double(a), e, accuracy: 2e-6, file: file, line: line)
        }
    }

    func testSGD() {
        assertClose(run(.sgd(momentum: 0, nesterov: false), rate: 0.1), [0.95, 0.975, 0.875])
    }

    func testSGDWithMomentum() {
        assertClose(run(.sgd(momentum: 0.9, nesterov: false), rate: 0.1), [0.95, 0.93, 0.812])
    }

    func testSGDWithNesterovMomentum() {
        assertClose(run(.sgd(momentum: 0.9, nesterov: true), rate: 0.1), [0.905, 0.912, 0.7058])
    }

    func testRMSprop() {
        assertClose(run(.rmsprop(rho: 0.9, momentum: 0, epsilon: 1e-7), rate: 0.01),
                    [0.9683772866436797, 0.983121456617157, 0.9549356748047833])
    }

    func testRMSpropWithMomentum() {
        assertClose(run(.rmsprop(rho: 0.9, momentum: 0.5, epsilon: 1e-7), rate: 0.01),
                    [0.9683772866436797, 0.9673100999389969, 0.9385907247742816])
    }

    func testAdamIsBiasCorrected() {
        // Step 1 moves by almost exactly the learning rate, whatever the
        // gradient's size: the bias correction at work.
        assertClose(run(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7), rate: 0.001),
                    [0.9990000063245154, 0.9987336707920792, 0.9980755610087696])
    }

    func testAdamW() {
        assertClose(run(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7), rate: 0.01, weightDecay: 0.004),
                    [0.9899600632451532, 0.9872571095182624, 0.9806365214007853])
    }

    func testStateSlotsAreNamedForCheckpoints() {
        XCTAssertEqual(UpdateRule.sgd(momentum: 0, nesterov: false).slots, [])
        XCTAssertEqual(UpdateRule.sgd(momentum: 0.9, nesterov: false).slots, ["momentum"])
        XCTAssertEqual(UpdateRule.rmsprop(rho: 0.9, momentum: 0, epsilon: 1e-7).slots, ["rms"])
        XCTAssertEqual(UpdateRule.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7).slots, ["m", "v"])
    }

    func testSchedules() {
        let constant = LearningRateSchedule(initialRate: 0.1)
        XCTAssertEqual(constant.rate(completedSteps: 1000), 0.1)

        let step = LearningRateSchedule(initialRate: 0.1, decay: .step(every: 10, factor: 0.5))
        XCTAssertEqual(step.rate(completedSteps: 9), 0.1, accuracy: 1e-9)
        XCTAssertEqual(step.rate(completedSteps: 10), 0.05, accuracy: 1e-9)
        XCTAssertEqual(step.rate(completedSteps: 25), 0.025, accuracy: 1e-9)

        let cosine = LearningRateSchedule(initialRate: 0.1, decay: .cosine(steps: 100, alpha: 0.1))
        XCTAssertEqual(cosine.rate(completedSteps: 0), 0.1, accuracy: 1e-7)
        // Halfway: 0.1 · (0.9 · 0.5 + 0.1) = 0.055.
        XCTAssertEqual(cosine.rate(completedSteps: 50), 0.055, accuracy: 1e-7)
        XCTAssertEqual(cosine.rate(completedSteps: 100), 0.01, accuracy: 1e-7)
        XCTAssertEqual(cosine.rate(completedSteps: 500), 0.01, accuracy: 1e-7)

        let warm = LearningRateSchedule(initialRate: 0.1, decay: .constant, warmupSteps: 4)
        XCTAssertEqual((0..<6).map { warm.rate(completedSteps: $0) }, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    }

    /// The per-step constants the backends receive.
    func testStepConstants() throws {
        let plain = UpdateRule.sgd(momentum: 0.9, nesterov: false).constants(step: 1, learningRate: 0.1, weightDecay: 0.5)
        XCTAssertEqual(plain, .sgd(learningRate: 0.1, momentum: 0.9, look: 1, direct: 0, keep: 1 - Float(0.1) * 0.5))
        let nesterov = UpdateRule.sgd(momentum: 0.9, nesterov: true).constants(step: 1, learningRate: 0.1, weightDecay: 0)
        XCTAssertEqual(nesterov, .sgd(learningRate: 0.1, momentum: 0.9, look: 0.9, direct: 0.1, keep: 1))

        // Adam's α = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ) changes with the step: at t = 1 it is η·√0.001/0.1 ≈ 3.16·η.
        let adam = UpdateRule.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7)
        guard case .adam(let first, let c1, let c2, _, _) = adam.constants(step: 1, learningRate: 0.01, weightDecay: 0),
              case .adam(let late, _, _, _, _) = adam.constants(step: 100_000, learningRate: 0.01, weightDecay: 0) else {
            return XCTFail("Adam gives Adam constants")
        }
        XCTAssertEqual(Double(first), 0.01 * 0.001.squareRoot() / 0.1, accuracy: 1e-5)
        XCTAssertEqual(late, 0.01, accuracy: 1e-7, "the correction fades")
        XCTAssertEqual(c1, 1 - 0.9)
        XCTAssertEqual(c2, 1 - 0.999)

        for rule: UpdateRule in [.sgd(momentum: 0, nesterov: false), .sgd(momentum: 0.5, nesterov: true),
                                 .rmsprop(rho: 0.9, momentum: 0, epsilon: 1e-7), .rmsprop(rho: 0.9, momentum: 0.5, epsilon: 1e-7),
                                 adam] {
            XCTAssertEqual(rule.constants(step: 1, learningRate: 0.1, weightDecay: 0).slotCount, rule.slots.count, "\(rule)")
        }
    }

    func testSquaredErrorGradientFactor() throws {
        let mean = try Objective(loss: .meanSquaredError, outputActivation: .linear, outputs: 4, isClassifier: false, layerCount: 2)
        XCTAssertEqual(mean.squaredErrorGradientFactor(gradientScale: 0.5), 2 * 0.5 / 4)
        let perceptron = try Objective(loss: .meanSquaredError, outputActivation: .step, outputs: 1, isClassifier: true, layerCount: 1)
        XCTAssertEqual(perceptron.squaredErrorGradientFactor(gradientScale: 0.5), 0.5)
    }
}
