// Gradient checks: every activation, loss and layer against a plain Double
// reference. Two questions each time:
//   1. Is the reference's analytic derivative right? Central finite
//      differences in Double must agree to a relative error < 1e-6.
//   2. Does the Float32 accelerator compute the same thing? Its results must
//      agree with the Double reference to a relative (norm-wise) error < 1e-4.

import XCTest
@testable import NNCore

// MARK: - Double reference

enum Reference {
    static func activate(_ a: Activation, _ z: [Double], columns: Int) -> [Double] {
        switch a {
        case .linear: return z
        case .step: return z.map { $0 >= 0 ? 1 : 0 }
        case .sign: return z.map { $0 >= 0 ? 1 : -1 }
        case .sigmoid: return z.map { 1 / (1 + Foundation.exp(-$0)) }
        case .tanh: return z.map { Foundation.tanh($0) }
        case .relu: return z.map { max($0, 0) }
        case .leakyRelu(let s): return z.map { $0 >= 0 ? $0 : Double(s) * $0 }
        case .softmax:
            var out = z
            for r in 0..<(z.count / columns) {
                let row = z[r * columns..<(r + 1) * columns]
                let m = row.max()!
                let e = row.map { Foundation.exp($0 - m) }
                let s = e.reduce(0, +)
                for j in 0..<columns { out[r * columns + j] = e[j] / s }
            }
            return out
        }
    }

    /// dz = g'(z) ⊙ da, written the textbook way (from z, not from a).
    static func activationBackward(_ a: Activation, z: [Double], da: [Double], columns: Int) -> [Double] {
        switch a {
        case .softmax:
            let s = activate(.softmax, z, columns: columns)
            var dz = da
            for r in 0..<(z.count / columns) {
                for i in 0..<columns {
                    var sum = 0.0
                    for j in 0..<columns {
                        let jac = s[r * columns + i] * ((i == j ? 1 : 0) - s[r * columns + j])
                        sum += jac * da[r * columns + j]
                    }
                    dz[r * columns + i] = sum
                }
            }
            return dz
        default:
            return zip(z, da).map { zi, g in
                switch a {
                case .linear: return g
                case .sigmoid: let s = 1 / (1 + Foundation.exp(-zi)); return g * s * (1 - s)
                case .tanh: let t = Foundation.tanh(zi); return g * (1 - t * t)
                case .relu: return zi > 0 ? g : 0
                case .leakyRelu(let s): return zi > 0 ? g : Double(s) * g
                default: return 0
                }
            }
        }
    }

    /// Σ over samples of the loss, given logits (fused) or outputs (MSE).
    static func loss(_ loss: Loss, _ z: [Double], targets: [Double], columns: Int) -> Double {
        let rows = z.count / columns
        switch loss {
        case .sparseCategoricalCrossEntropy, .categoricalCrossEntropy:
            let p = activate(.softmax, z, columns: columns)
            var total = 0.0
            for r in 0..<rows {
                if loss == .sparseCategoricalCrossEntropy {
                    total -= Foundation.log(p[r * columns + Int(targets[r])])
                } else {
                    for j in 0..<columns { total -= targets[r * columns + j] * Foundation.log(p[r * columns + j]) }
                }
            }
            return total
        case .binaryCrossEntropy:
            var total = 0.0
            for i in z.indices {
                let p = 1 / (1 + Foundation.exp(-z[i]))
                total -= targets[i] * Foundation.log(p) + (1 - targets[i]) * Foundation.log(1 - p)
            }
            return total / Double(columns)
        case .meanSquaredError:
            return zip(z, targets).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(columns)
        }
    }

    /// Analytic ∂(Σ loss)/∂z.
    static func lossGradient(_ loss: Loss, _ z: [Double], targets: [Double], columns: Int) -> [Double] {
        let rows = z.count / columns
        switch loss {
        case .sparseCategoricalCrossEntropy, .categoricalCrossEntropy:
            var g = activate(.softmax, z, columns: columns)
            for r in 0..<rows {
                if loss == .sparseCategoricalCrossEntropy {
                    g[r * columns + Int(targets[r])] -= 1
                } else {
                    for j in 0..<columns { g[r * columns + j] -= targets[r * columns + j] }
                }
            }
            return g
        case .binaryCrossEntropy:
            return z.indices.map { (1 / (1 + Foundation.exp(-z[$0])) - targets[$0]) / Double(columns) }
        case .meanSquaredError:
            return z.indices.map { 2 * (z[$0] - targets[$0]) / Double(columns) }
        }
    }
}

/// Central finite differences of `f` at `x`.
func numericGradient(_ x: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    x.indices.map { i in
        var plus = x, minus = x
        plus[i] += h
        minus[i] -= h
        return (f(plus) - f(minus)) / (2 * h)
    }
}

/// ‖a − b‖ / max(‖b‖, tiny).
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    let diff = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    let norm = b.map { $0 * $0 }.reduce(0, +).squareRoot()
    return diff / max(norm, 1e-30)
}

func randomValues(_ n: Int, seed: UInt64, scale: Float = 1, avoidingZero: Bool = false) -> [Float] {
    var stream = RandomStream(key: randomKey(seed: seed, purpose: .testing))
    return (0..<n).map { _ in
        var v = stream.nextUniform(-scale, scale)
        if avoidingZero && abs(v) < 0.05 * scale { v += v < 0 ? -0.1 * scale : 0.1 * scale }
        return v
    }
}

// MARK: - Tests

final class GradientCheckTests: XCTestCase {
    let cpu = CPUAccelerator(threads: 1)
    let rows = 5, columns = 4

    func testActivationDerivativesMatchFiniteDifferencesAndFloat32() {
        let differentiable: [Activation] = [.linear, .sigmoid, .tanh, .relu, .leakyRelu(slope: 0.2), .softmax]
        for (index, activation) in differentiable.enumerated() {
            let zf = randomValues(rows * columns, seed: UInt64(10 + index), scale: 3, avoidingZero: true)
            let z = zf.map(Double.init)
            let weights = randomValues(rows * columns, seed: UInt64(40 + index)).map(Double.init)
            // Scalar function E = Σ w ⊙ g(z); its gradient is g'(z) ⊙ w.
            let numeric = numericGradient(z) { x in
                zip(Reference.activate(activation, x, columns: self.columns), weights).map(*).reduce(0, +)
            }
            let analytic = Reference.activationBackward(activation, z: z, da: weights, columns: columns)
            XCTAssertLessThan(relativeError(analytic, numeric), 1e-6, "\(activation) reference derivative")

            let zt = cpu.tensor(zf, rows: rows, columns: columns)
            let out = cpu.tensor(rows: rows, columns: columns)
            cpu.activate(activation, zt, into: out)
            let forward = cpu.values(out).map(Double.init)
            XCTAssertLessThan(relativeError(forward, Reference.activate(activation, z, columns: columns)), 1e-6,
                              "\(activation) Float32 forward")
            let grad = cpu.tensor(weights.map(Float.init), rows: rows, columns: columns)
            cpu.activationBackward(activation, output: out, gradient: grad, into: grad)
            XCTAssertLessThan(relativeError(cpu.values(grad).map(Double.init), analytic), 1e-4,
                              "\(activation) Float32 derivative from the output")
        }
    }

    func testStepAndSignForwardFollowTheCourse() {
        let z: [Float] = [-2, -0.0001, 0, 0.5]
        let t = cpu.tensor(z, rows: 1, columns: 4)
        let out = cpu.tensor(rows: 1, columns: 4)
        cpu.activate(.step, t, into: out)
        XCTAssertEqual(cpu.values(out), [0, 0, 1, 1])
        cpu.activate(.sign, t, into: out)
        XCTAssertEqual(cpu.values(out), [-1, -1, 1, 1])
    }

    func testLossGradientsMatchFiniteDifferencesAndFloat32() throws {
        let sparse = (0..<rows).map { Double($0 % columns) }
        var oneHot = [Double](repeating: 0, count: rows * columns)
        for r in 0..<rows { oneHot[r * columns + (r * 3) % columns] = 1 }
        let binary = randomValues(rows * columns, seed: 3).map { $0 > 0 ? 1.0 : 0.0 }
        let regression = randomValues(rows * columns, seed: 4).map(Double.init)
        let cases: [(Loss, [Double], Int)] = [
            (.sparseCategoricalCrossEntropy, sparse, 1),
            (.categoricalCrossEntropy, oneHot, columns),
            (.binaryCrossEntropy, binary, columns),
            (.meanSquaredError, regression, columns),
        ]
        for (loss, targets, targetWidth) in cases {
            let zf = randomValues(rows * columns, seed: 7, scale: 2)
            let z = zf.map(Double.init)
            let numeric = numericGradient(z) { Reference.loss(loss, $0, targets: targets, columns: self.columns) }
            let analytic = Reference.lossGradient(loss, z, targets: targets, columns: columns)
            XCTAssertLessThan(relativeError(analytic, numeric), 1e-6, "\(loss) reference gradient")

            let logits = cpu.tensor(zf, rows: rows, columns: columns)
            let t = cpu.tensor(targets.map(Float.init), rows: rows, columns: targetWidth)
            let probs = cpu.tensor(rows: rows, columns: columns)
            let grad = cpu.tensor(rows: rows, columns: columns)
            let stats = cpu.tensor(rows: 1, columns: Statistic.width)
            let scale: Float = 1 / Float(rows)
            switch loss {
            case .sparseCategoricalCrossEntropy, .categoricalCrossEntropy:
                cpu.softmaxCrossEntropy(logits: logits, targets: t, sparse: loss == .sparseCategoricalCrossEntropy,
                                        probabilities: probs, gradient: grad, gradientScale: scale, statistics: stats)
            case .binaryCrossEntropy:
                cpu.sigmoidBinaryCrossEntropy(logits: logits, targets: t, probabilities: probs, gradient: grad,
                                              gradientScale: scale, statistics: stats)
            case .meanSquaredError:
                let objective = try Objective(loss: .meanSquaredError, outputActivation: .linear, outputs: columns,
                                              isClassifier: false, layerCount: 1)
                cpu.squaredError(outputs: logits, targets: t, gradient: grad,
                                 gradientFactor: objective.squaredErrorGradientFactor(gradientScale: scale),
                                 accuracy: .none, statistics: stats)
            }
            let expected = analytic.map { $0 / Double(rows) }
            XCTAssertLessThan(relativeError(cpu.values(grad).map(Double.init), expected), 1e-4, "\(loss) Float32 gradient")
            let lossSum = Double(cpu.values(stats)[Statistic.lossSum.rawValue])
            let referenceLoss = Reference.loss(loss, z, targets: targets, columns: columns)
            XCTAssertEqual(lossSum, referenceLoss, accuracy: 1e-4 * abs(referenceLoss), "\(loss) Float32 value")
        }
    }

    func testSoftmaxCrossEntropyIsStableForHugeLogits() {
        let logits = cpu.tensor([1e4, -1e4, 0, -1e4, 1e4, 5e3], rows: 2, columns: 3)
        let targets = cpu.tensor([0, 2], rows: 2, columns: 1)
        let probs = cpu.tensor(rows: 2, columns: 3), grad = cpu.tensor(rows: 2, columns: 3)
        let stats = cpu.tensor(rows: 1, columns: Statistic.width)
        cpu.softmaxCrossEntropy(logits: logits, targets: targets, sparse: true, probabilities: probs,
                                gradient: grad, gradientScale: 0.5, statistics: stats)
        let values = cpu.values(probs) + cpu.values(grad) + cpu.values(stats)
        XCTAssertTrue(values.allSatisfy(\.isFinite), "\(values)")
        // Row 0 is certain and right (loss 0); row 1 puts its mass on class 1
        // while the label is 2: loss = 1e4 − 5e3.
        XCTAssertEqual(cpu.values(stats)[0], 5000, accuracy: 1e-3)
        XCTAssertEqual(cpu.values(stats)[1], 1)

        let bceLogits = cpu.tensor([1e4, -1e4], rows: 2, columns: 1)
        let bceTargets = cpu.tensor([0, 1], rows: 2, columns: 1)
        let p = cpu.tensor(rows: 2, columns: 1), g = cpu.tensor(rows: 2, columns: 1)
        let s = cpu.tensor(rows: 1, columns: Statistic.width)
        cpu.sigmoidBinaryCrossEntropy(logits: bceLogits, targets: bceTargets, probabilities: p, gradient: g,
                                      gradientScale: 1, statistics: s)
        XCTAssertTrue((cpu.values(p) + cpu.values(g) + cpu.values(s)).allSatisfy(\.isFinite))
        XCTAssertEqual(cpu.values(s)[0], 2e4, accuracy: 1)
    }

    /// The whole network: backpropagation's gradients for every parameter
    /// against finite differences of a Double re-implementation of the model.
    func testBackpropagationThroughAWholeNetwork() throws {
        let specs: [LayerSpec] = [
            .dense(units: 5, activation: .tanh, initializer: .glorotUniform, l1: 0, l2: 0),
            .dense(units: 4, activation: .sigmoid, initializer: .glorotUniform, l1: 0, l2: 0),
            .dense(units: 3, activation: .softmax, initializer: .glorotUniform, l1: 0, l2: 0),
        ]
        let objective = try Objective(loss: .sparseCategoricalCrossEntropy, outputActivation: .softmax, outputs: 3,
                                      isClassifier: true, layerCount: 3)
        let model = Sequential(inputSize: 3, layers: specs, objective: objective, accelerator: cpu)
        model.initialize(seed: 11)
        let batch = 6
        let xf = randomValues(batch * 3, seed: 21, scale: 2)
        let labels: [Float] = [0, 1, 2, 2, 1, 0]
        let stats = cpu.tensor(rows: 1, columns: Statistic.width)
        model.zeroGradients()
        model.accumulateGradients(inputs: cpu.tensor(xf, rows: batch, columns: 3),
                                  targets: cpu.tensor(labels, rows: batch, columns: 1),
                                  gradientScale: 1 / Float(batch), pass: Pass(training: true), statistics: stats)
        let analytic = cpu.values(model.gradients).map(Double.init)

        let entries = model.entries
        let x = xf.map(Double.init)
        func meanLoss(_ p: [Double]) -> Double {
            var a = x, width = 3
            for (layer, activation) in [(0, Activation.tanh), (1, .sigmoid), (2, .softmax)] {
                let w = entries[2 * layer], b = entries[2 * layer + 1]
                let units = w.shape[0]
                var z = [Double](repeating: 0, count: batch * units)
                for r in 0..<batch {
                    for o in 0..<units {
                        var s = p[b.offset + o]
                        for i in 0..<width { s += a[r * width + i] * p[w.offset + o * width + i] }
                        z[r * units + o] = s
                    }
                }
                a = layer == 2 ? z : Reference.activate(activation, z, columns: units)
                width = units
            }
            return Reference.loss(.sparseCategoricalCrossEntropy, a, targets: labels.map(Double.init), columns: 3) / Double(batch)
        }
        let parameters = cpu.values(model.parameters).map(Double.init)
        let numeric = numericGradient(parameters, meanLoss)
        XCTAssertLessThan(relativeError(analytic, numeric), 1e-4)
    }

    func testDenseBackwardAccumulatesIntoGradients() throws {
        let objective = try Objective(loss: .meanSquaredError, outputActivation: .linear, outputs: 2,
                                      isClassifier: false, layerCount: 1)
        let model = Sequential(inputSize: 3, layers: [.dense(units: 2, activation: .linear, initializer: .glorotUniform, l1: 0, l2: 0)],
                               objective: objective, accelerator: cpu)
        model.initialize(seed: 1)
        let x = cpu.tensor(randomValues(12, seed: 2), rows: 4, columns: 3)
        let y = cpu.tensor(randomValues(8, seed: 3), rows: 4, columns: 2)
        let stats = cpu.tensor(rows: 1, columns: Statistic.width)
        model.zeroGradients()
        model.accumulateGradients(inputs: x, targets: y, gradientScale: 0.25, pass: Pass(training: true), statistics: stats)
        let once = cpu.values(model.gradients)
        model.accumulateGradients(inputs: x, targets: y, gradientScale: 0.25, pass: Pass(training: true), statistics: stats)
        let twice = cpu.values(model.gradients)
        for (a, b) in zip(once, twice) { XCTAssertEqual(2 * a, b, accuracy: 1e-6 * max(1, abs(b))) }
        XCTAssertTrue(once.contains { $0 != 0 })
    }

    func testDropoutKeepsRateAndScalesAndBackpropagatesThroughMask() {
        let n = 20_000
        let input = cpu.tensor([Float](repeating: 1, count: n), rows: 100, columns: 200)
        let mask = cpu.tensor(rows: 100, columns: 200), out = cpu.tensor(rows: 100, columns: 200)
        cpu.dropout(input, rate: 0.25, key: 99, rowOffset: 0, mask: mask, into: out)
        let values = cpu.values(out)
        let kept = values.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / Double(n), 0.75, accuracy: 0.02)
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 })
        // The mean is preserved in expectation (inverted dropout).
        XCTAssertEqual(Double(values.reduce(0, +)) / Double(n), 1, accuracy: 0.03)

        // A sample's mask depends on its global row, not on who computes it.
        let tail = Tensor(storage: input.storage, offset: 50 * 200, rows: 50, columns: 200)
        let mask2 = cpu.tensor(rows: 50, columns: 200), out2 = cpu.tensor(rows: 50, columns: 200)
        cpu.dropout(tail, rate: 0.25, key: 99, rowOffset: 50, mask: mask2, into: out2)
        XCTAssertEqual(cpu.values(mask2), Array(cpu.values(mask)[(50 * 200)...]))

        let layer = Dropout(rate: 0.5, size: 4, index: 0, accelerator: cpu)
        let x = cpu.tensor([1, 2, 3, 4, 5, 6, 7, 8], rows: 2, columns: 4)
        let pass = Pass(training: true, seed: 3, step: 1)
        let y = cpu.values(layer.forward(x, pass: pass))
        let g = cpu.tensor([Float](repeating: 1, count: 8), rows: 2, columns: 4)
        let dx = cpu.values(layer.backward(g, pass: pass, needsInputGradient: true)!)
        for i in 0..<8 { XCTAssertEqual(dx[i] * Float(i + 1), y[i], accuracy: 1e-6) }
        XCTAssertEqual(cpu.values(layer.forward(x, pass: .evaluation)), cpu.values(x), "identity at evaluation")
    }

    func testWeightPenaltiesAddTheirGradientAndValue() {
        let w = cpu.tensor([1, -2, 0, 3], rows: 1, columns: 4)
        let g = cpu.tensor(rows: 1, columns: 4)
        let stats = cpu.tensor(rows: 1, columns: Statistic.width)
        cpu.addPenalty(weights: w, gradient: g, l1: 0.1, l2: 0.01, weight: 2, statistics: stats)
        // ∂/∂w [0.01 Σw² + 0.1 Σ|w|] = 0.02 w + 0.1 sign(w)
        let expected: [Float] = [0.12, -0.14, 0, 0.16]
        for (a, b) in zip(cpu.values(g), expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        // value = 0.01·14 + 0.1·6 = 0.74, weighted by 2.
        XCTAssertEqual(cpu.values(stats)[0], 1.48, accuracy: 1e-5)
    }

    func testTheFirstNonFiniteStepIsRecordedAndLaterUpdatesAreSkipped() {
        var values = [Float](repeating: 1, count: 1000)
        let guardRecord = FiniteGuard(accelerator: cpu)
        cpu.checkFinite(cpu.tensor(values, rows: 1, columns: 1000), step: 1, flag: guardRecord.tensor)
        XCTAssertNil(guardRecord.read(cpu))
        values[3] = .nan
        values[999] = .infinity
        values[500] = -.infinity
        cpu.checkFinite(cpu.tensor(values, rows: 1, columns: 1000), step: 2, flag: guardRecord.tensor)
        values[4] = .nan
        cpu.checkFinite(cpu.tensor(values, rows: 1, columns: 1000), step: 3, flag: guardRecord.tensor)
        let record = guardRecord.read(cpu)
        XCTAssertEqual(record?.step, 2, "the first bad step is kept")
        XCTAssertEqual(record?.count, 3)
        XCTAssertEqual(record?.source, .gradients)
        XCTAssertEqual(record?.firstIndex, 3)

        let w = cpu.tensor([1, 2], rows: 1, columns: 2), g = cpu.tensor([0.5, 0.5], rows: 1, columns: 2)
        let sgd = UpdateRule.sgd(momentum: 0, nesterov: false)
        cpu.update(sgd.constants(step: 1, learningRate: 1, weightDecay: 0.1), parameters: w, gradients: g, state: [],
                   guarded: UpdateGuard(record: guardRecord.tensor, step: 4))
        XCTAssertEqual(cpu.values(w), [1, 2], "a flagged record stops every update")
        cpu.update(sgd.constants(step: 1, learningRate: 1, weightDecay: 0), parameters: w, gradients: g, state: [],
                   guarded: UpdateGuard(record: FiniteGuard(accelerator: cpu).tensor, step: 4))
        XCTAssertEqual(cpu.values(w), [0.5, 1.5], "a clear record lets it through")
    }

    func testAnUpdateThatOverflowsIsRecordedAndATrialWritesNothing() {
        let sgd = UpdateRule.sgd(momentum: 0.9, nesterov: false)
        for trial in [false, true] {
            // m = −η·g and w + m with η = 1e20: the gradient 1e19 (its square
            // still finite) takes weight 2 to −inf, the others stay finite.
            let w = cpu.tensor([1, 2, 3, 4], rows: 1, columns: 4), g = cpu.tensor([0.5, 0.5, 1e19, 0.5], rows: 1, columns: 4)
            let m = cpu.tensor(rows: 1, columns: 4)
            let guardRecord = FiniteGuard(accelerator: cpu)
            cpu.checkFinite(g, step: 5, flag: guardRecord.tensor)
            XCTAssertNil(guardRecord.read(cpu), "1e19 passes the gradient check: its square is finite")
            guardRecord.clear(cpu)
            cpu.update(sgd.constants(step: 1, learningRate: 1e20, weightDecay: 0), parameters: w, gradients: g, state: [m],
                       guarded: UpdateGuard(record: guardRecord.tensor, step: 5, trial: trial))
            XCTAssertEqual(guardRecord.read(cpu), FiniteGuard.Record(step: 5, count: 1, source: .update, firstIndex: 2))
            if trial {
                XCTAssertEqual(cpu.values(w), [1, 2, 3, 4], "a trial leaves the weights")
                XCTAssertEqual(cpu.values(m), [0, 0, 0, 0], "and the state")
            } else {
                XCTAssertFalse(cpu.values(w)[2].isFinite)
                XCTAssertEqual(cpu.values(w)[0], 1 - 0.5e20, accuracy: 1e14)
            }
            // The next step is skipped while the record is set, and runs once it is cleared.
            let before = cpu.values(w)
            cpu.update(sgd.constants(step: 1, learningRate: 0.1, weightDecay: 0), parameters: w,
                       gradients: cpu.tensor([1, 1, 1, 1], rows: 1, columns: 4), state: [m],
                       guarded: UpdateGuard(record: guardRecord.tensor, step: 6))
            XCTAssertEqual(cpu.values(w).map(\.bitPattern), before.map(\.bitPattern))
            guardRecord.clear(cpu)
            XCTAssertNil(guardRecord.read(cpu))
        }
    }

    func testAGradientWhoseSquareOverflowsIsCaughtBeforeTheSecondMoment() {
        // Adam's v would become inf (g² > FLT_MAX) while the weight stayed
        // finite (m/√∞ = 0): the gradient check must catch it.
        let guardRecord = FiniteGuard(accelerator: cpu)
        cpu.checkFinite(cpu.tensor([0.5, -2e19, 1], rows: 1, columns: 3), step: 3, flag: guardRecord.tensor)
        XCTAssertEqual(guardRecord.read(cpu), FiniteGuard.Record(step: 3, count: 1, source: .gradients, firstIndex: 1))
    }

    func testGemmWithTransposesAndBeta() {
        // A (2×3), B (3×2): C = A·B; then C += Aᵀᵀ·(Bᵀ)ᵀ with β = 1 doubles it.
        let a = cpu.tensor([1, 2, 3, 4, 5, 6], rows: 2, columns: 3)
        let b = cpu.tensor([7, 8, 9, 10, 11, 12], rows: 3, columns: 2)
        let c = cpu.tensor(rows: 2, columns: 2)
        cpu.gemm(transposeA: false, transposeB: false, alpha: 1, a, b, beta: 0, c)
        XCTAssertEqual(cpu.values(c), [58, 64, 139, 154])
        let at = cpu.tensor([1, 4, 2, 5, 3, 6], rows: 3, columns: 2)
        let bt = cpu.tensor([7, 9, 11, 8, 10, 12], rows: 2, columns: 3)
        cpu.gemm(transposeA: true, transposeB: true, alpha: 1, at, bt, beta: 1, c)
        XCTAssertEqual(cpu.values(c), [116, 128, 278, 308])
    }
}

import Foundation
