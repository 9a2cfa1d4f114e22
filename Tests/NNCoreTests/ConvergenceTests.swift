// Convergence: the course's XOR story, and a linear fit.

import XCTest
@testable import NNCore

final class ConvergenceTests: XCTestCase {
    let cpu = CPUAccelerator(threads: 1)
    let xorInputs: [Float] = [0, 0, 0, 1, 1, 0, 1, 1]
    let xorLabels: [Float] = [0, 1, 1, 0]

    /// Trains on the whole set each step; returns accuracy on it.
    func train(_ specs: [LayerSpec], loss: Loss, rule: UpdateRule, rate: Float, steps: Int,
               inputs: [Float], labels: [Float], features: Int) throws -> Double {
        let rows = labels.count
        let last = specs.last!
        guard case .dense(let outputs, let activation, _, _, _) = last else { fatalError() }
        let objective = try Objective(loss: loss, outputActivation: activation, outputs: outputs, isClassifier: true,
                                      layerCount: specs.count)
        let model = Sequential(inputSize: features, layers: specs, objective: objective, accelerator: cpu)
        model.initialize(seed: 7)
        let optimizer = Optimizer(rule: rule, schedule: LearningRateSchedule(initialRate: rate), weightDecay: 0,
                                  parameterCount: model.parameterCount, accelerator: cpu)
        let x = cpu.tensor(inputs, rows: rows, columns: features)
        var encoded = [Float](repeating: 0, count: rows * objective.targetWidth)
        labels.withUnsafeBufferPointer { l in
            encoded.withUnsafeMutableBufferPointer { objective.encodeTargets(labels: l.baseAddress!, labelWidth: 1, rows: rows, into: $0.baseAddress!) }
        }
        let y = cpu.tensor(encoded, rows: rows, columns: objective.targetWidth)
        for _ in 0..<steps {
            let stats = cpu.tensor(rows: 1, columns: Statistic.width)
            model.zeroGradients()
            model.accumulateGradients(inputs: x, targets: y, gradientScale: 1 / Float(rows), pass: Pass(training: true), statistics: stats)
            optimizer.apply(parameters: model.parameters, gradients: model.gradients)
        }
        let stats = cpu.tensor(rows: 1, columns: Statistic.width)
        model.evaluate(inputs: x, targets: y, statistics: stats)
        return Double(cpu.values(stats)[Statistic.correct.rawValue]) / Double(rows * objective.accuracyUnitsPerSample)
    }

    func testASinglePerceptronCannotSeparateXOR() throws {
        // The perceptron rule on a step unit, and gradient descent on a
        // sigmoid unit: a line gets at most 3 of the 4 points right.
        for activation in [Activation.step, .sigmoid] {
            let accuracy = try train([.dense(units: 1, activation: activation, initializer: .glorotUniform, l1: 0, l2: 0)],
                                     loss: .meanSquaredError, rule: .sgd(momentum: 0, nesterov: false), rate: 0.5, steps: 500,
                                     inputs: xorInputs, labels: xorLabels, features: 2)
            XCTAssertLessThanOrEqual(accuracy, 0.75, "\(activation)")
        }
    }

    func testAPerceptronLearnsAND() throws {
        let accuracy = try train([.dense(units: 1, activation: .step, initializer: .zeros, l1: 0, l2: 0)],
                                 loss: .meanSquaredError, rule: .sgd(momentum: 0, nesterov: false), rate: 0.1, steps: 50,
                                 inputs: xorInputs, labels: [0, 0, 0, 1], features: 2)
        XCTAssertEqual(accuracy, 1)
    }

    func testOneHiddenLayerSolvesXOR() throws {
        for hidden in [Activation.sigmoid, .tanh] {
            let accuracy = try train([.dense(units: 4, activation: hidden, initializer: .glorotUniform, l1: 0, l2: 0),
                                      .dense(units: 1, activation: .sigmoid, initializer: .glorotUniform, l1: 0, l2: 0)],
                                     loss: .binaryCrossEntropy, rule: .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7),
                                     rate: 0.05, steps: 600, inputs: xorInputs, labels: xorLabels, features: 2)
            XCTAssertEqual(accuracy, 1, "hidden \(hidden)")
        }
    }

    func testLinearRegressionFindsTheLine() throws {
        // y = 3x − 2 exactly; MSE + SGD must recover the slope and intercept.
        let xs: [Float] = (0..<20).map { Float($0) / 10 - 1 }
        let ys = xs.map { 3 * $0 - 2 }
        let objective = try Objective(loss: .meanSquaredError, outputActivation: .linear, outputs: 1, isClassifier: false, layerCount: 1)
        let model = Sequential(inputSize: 1, layers: [.dense(units: 1, activation: .linear, initializer: .zeros, l1: 0, l2: 0)],
                               objective: objective, accelerator: cpu)
        let optimizer = Optimizer(rule: .sgd(momentum: 0.9, nesterov: false), schedule: LearningRateSchedule(initialRate: 0.05),
                                  weightDecay: 0, parameterCount: model.parameterCount, accelerator: cpu)
        let x = cpu.tensor(xs, rows: 20, columns: 1), y = cpu.tensor(ys, rows: 20, columns: 1)
        for _ in 0..<500 {
            let stats = cpu.tensor(rows: 1, columns: Statistic.width)
            model.zeroGradients()
            model.accumulateGradients(inputs: x, targets: y, gradientScale: 1 / 20, pass: Pass(training: true), statistics: stats)
            optimizer.apply(parameters: model.parameters, gradients: model.gradients)
        }
        let p = cpu.values(model.parameters)
        XCTAssertEqual(p[0], 3, accuracy: 1e-3)
        XCTAssertEqual(p[1], -2, accuracy: 1e-3)
    }

    func testStepInsideANetworkIsRejected() {
        XCTAssertThrowsError(try Objective(loss: .meanSquaredError, outputActivation: .step, outputs: 1, isClassifier: true, layerCount: 2)) {
            XCTAssertTrue("\($0)".contains("no useful derivative"), "\($0)")
        }
        XCTAssertThrowsError(try Objective(loss: .sparseCategoricalCrossEntropy, outputActivation: .sigmoid, outputs: 3, isClassifier: true, layerCount: 2)) {
            XCTAssertTrue("\($0)".contains("needs a softmax output layer"), "\($0)")
        }
    }
}
