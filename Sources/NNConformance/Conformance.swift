// The backend conformance suite: every op of the `Accelerator` protocol, run
// on fresh random inputs of several shapes on a candidate and a reference
// accelerator, outputs compared value by value.
//
// A value passes when |a − r| ≤ atol + rtol·|r| with rtol = 1e-4 and
// atol = 1e-5 (inputs are scaled so outputs are of order one, e.g. gemm's A by
// 1/√K). The reported error is |a − r| / (|r| + atol/rtol), which is ≤ rtol
// exactly when the value passes. Dropout masks, step/sign outputs, correct
// counts, non-finite records and plain copies must match exactly (bit for bit).
//
// Every tensor is a view inside a larger storage with guard values on both
// sides; the guards must come back untouched, so writes outside a view fail.
//
// R × C = rows × columns, K = classes or the inner gemm dimension.

import NNCore

/// The outcome of one conformance check.
public struct CheckResult: Sendable, CustomStringConvertible {
    /// The op and its case, e.g. `gemm NT m=7 k=13 n=5 beta=0.5`; always starts with the op's name.
    public let name: String
    /// Largest |a − r| / (|r| + atol/rtol) over the compared values (∞ for a
    /// non-finite mismatch); pass needs ≤ rtol, or 0 for exact checks.
    public let maxRelativeError: Double
    /// Whether every compared value is within tolerance (or exact, where required).
    public let passed: Bool
    /// What was compared, and the worst value when the check failed.
    public let detail: String

    /// The `Accelerator` operation the check exercises: the first word of `name`.
    public var operation: String { String(name.prefix { $0 != " " }) }

    /// Creates a result.
    public init(name: String, maxRelativeError: Double, passed: Bool, detail: String) {
        self.name = name
        self.maxRelativeError = maxRelativeError
        self.passed = passed
        self.detail = detail
    }

    /// One line: `PASS gemm NN m=1 k=1 n=1 beta=0 (max rel 0.0e+00; C 1 values)`.
    public var description: String {
        "\(passed ? "PASS" : "FAIL") \(name) (max rel \(formatted(maxRelativeError)); \(detail))"
    }
}

/// The backend conformance suite, shared by the test suite and `nntrain selftest`.
public enum Conformance {
    /// rtol: allowed error relative to the reference value.
    public static let relativeTolerance = 1e-4
    /// atol: allowed absolute error, for values near zero.
    public static let absoluteTolerance = 1e-5

    /// Runs every check on `candidate` and `reference` from the same random
    /// inputs (drawn from `seed`) and returns one result per check.
    public static func run(_ candidate: any Accelerator, reference: any Accelerator, seed: UInt64) -> [CheckResult] {
        let suite = Suite(candidate: candidate, reference: reference, seed: seed)
        suite.memoryChecks()
        suite.linearAlgebraChecks()
        suite.activationChecks()
        suite.lossChecks()
        suite.regularizationChecks()
        suite.optimizerChecks()
        suite.nonFiniteChecks()
        return suite.results
    }

    /// A summary line plus one line per failed check.
    public static func report(_ results: [CheckResult]) -> String {
        let failed = results.filter { !$0.passed }
        let worst = results.map(\.maxRelativeError).max() ?? 0
        var lines = ["conformance: \(results.count - failed.count)/\(results.count) checks passed (largest relative error \(formatted(worst)), rtol \(relativeTolerance), atol \(absoluteTolerance))"]
        lines += failed.map(\.description)
        return lines.joined(separator: "\n")
    }
}

// MARK: - Harness

/// The same logical tensor on both accelerators, each a view between guards.
struct Pair {
    let candidate: Tensor
    let reference: Tensor
    /// The whole storages, guards included.
    let candidateStorage: Tensor
    let referenceStorage: Tensor
}

/// One output to compare after a check's op ran on both sides.
struct Output {
    let label: String
    let pair: Pair
    /// Compare every value exactly.
    var exact = false
    /// Indices (within the view) compared exactly even when `exact` is false.
    var exactIndices: Set<Int> = []
}

final class Suite {
    let candidate: any Accelerator
    let reference: any Accelerator
    var random: RandomStream
    var results: [CheckResult] = []

    /// Guard values on each side of every view, and their contents.
    static let guardCount = 3
    static let guardValue: Float = -12345.5

    /// The shapes most checks run over: a scalar, an odd size, an MNIST batch.
    static let shapes = [(1, 1), (7, 13), (128, 784)]

    init(candidate: any Accelerator, reference: any Accelerator, seed: UInt64) {
        self.candidate = candidate
        self.reference = reference
        random = RandomStream(key: randomKey(seed: seed, purpose: .testing, 0xC0_4F0F))
    }

    // MARK: Inputs

    /// Uploads `values` as an (R × C) view on both accelerators.
    func pair(_ values: [Float], _ rows: Int, _ columns: Int) -> Pair {
        precondition(values.count == rows * columns)
        let g = Suite.guardCount
        let padded = [Float](repeating: Suite.guardValue, count: g) + values + [Float](repeating: Suite.guardValue, count: g)
        func make(_ accelerator: any Accelerator) -> (Tensor, Tensor) {
            let storage = accelerator.allocate(padded.count)
            padded.withUnsafeBufferPointer { accelerator.copy($0, to: storage.tensor) }
            return (Tensor(storage: storage, offset: g, rows: rows, columns: columns), storage.tensor)
        }
        let (c, cs) = make(candidate), (r, rs) = make(reference)
        return Pair(candidate: c, reference: r, candidateStorage: cs, referenceStorage: rs)
    }

    /// Uniform values in [low, high).
    func uniform(_ rows: Int, _ columns: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        (0..<(rows * columns)).map { _ in random.nextUniform(low, high) }
    }

    /// Rows of positive values summing to one (softmax outputs, soft targets).
    func distributions(_ rows: Int, _ columns: Int) -> [Float] {
        var values = uniform(rows, columns, 0.05, 1)
        for r in 0..<rows {
            let s = values[(r * columns)..<((r + 1) * columns)].reduce(0, +)
            for j in 0..<columns { values[r * columns + j] /= s }
        }
        return values
    }

    /// One-hot rows of K columns and their class indices (R × 1).
    func oneHot(_ rows: Int, _ classes: Int) -> (oneHot: [Float], labels: [Float]) {
        var values = [Float](repeating: 0, count: rows * classes), labels: [Float] = []
        for r in 0..<rows {
            let label = random.nextInt(below: classes)
            values[r * classes + label] = 1
            labels.append(Float(label))
        }
        return (values, labels)
    }

    /// A statistics buffer holding nonzero starting values, so adding is told apart from overwriting.
    func statistics() -> Pair { pair([1.5, 2, 3, 4], 1, Statistic.width) }

    // MARK: Running and comparing

    /// Runs `op` on both accelerators (the closure picks each side's tensor)
    /// and records one result comparing `outputs`.
    func check(_ name: String, _ outputs: [Output], _ op: (any Accelerator, (Pair) -> Tensor) -> Void) {
        op(candidate) { $0.candidate }
        op(reference) { $0.reference }
        record(name, outputs)
    }

    func record(_ name: String, _ outputs: [Output]) {
        let rtol = Conformance.relativeTolerance, atol = Conformance.absoluteTolerance
        var worst = 0.0, passed = true, compared = 0
        var failure: String?
        for output in outputs {
            let a = candidate.values(output.pair.candidateStorage)
            let r = reference.values(output.pair.referenceStorage)
            let g = Suite.guardCount, count = a.count - 2 * g
            compared += count
            for i in 0..<a.count {
                let inGuard = i < g || i >= g + count
                let exact = inGuard || output.exact || output.exactIndices.contains(i - g)
                let ai = Double(a[i]), ri = Double(r[i])
                var error: Double
                if ai.isNaN && ri.isNaN || ai == ri {
                    error = 0
                } else if !ai.isFinite || !ri.isFinite {
                    error = .infinity
                } else {
                    error = abs(ai - ri) / (abs(ri) + atol / rtol)
                }
                let ok = exact ? (a[i].bitPattern == r[i].bitPattern || ai.isNaN && ri.isNaN) : error <= rtol
                worst = max(worst, error)
                if !ok {
                    if passed {
                        let place = inGuard ? "guard value \(i < g ? i - g : i - g - count) outside the view"
                                            : "value \(i - g)\(exact ? " (must be exact)" : "")"
                        failure = "\(output.label) \(place): got \(a[i]), expected \(r[i])"
                    }
                    passed = false
                }
            }
        }
        let labels = outputs.map(\.label).joined(separator: ", ")
        results.append(CheckResult(name: name, maxRelativeError: worst, passed: passed,
                                   detail: failure ?? "\(labels): \(compared) values"))
    }

    // MARK: - Checks: memory

    func memoryChecks() {
        for (rows, columns) in Suite.shapes + [(0, 5)] {
            let values = uniform(rows, columns)
            let x = pair(values, rows, columns)
            check("copy host-device-host \(rows)x\(columns)", [Output(label: "x", pair: x, exact: true)]) { _, _ in }
            // Into and out of views between guards: a download of one view
            // uploaded into another must arrive unchanged, and only there.
            let y = pair(uniform(rows, columns), rows, columns)
            check("copy view device-host-device \(rows)x\(columns)", [Output(label: "target", pair: y, exact: true)]) { acc, side in
                acc.values(side(x)).withUnsafeBufferPointer { acc.copy($0, to: side(y)) }
            }
            // The copy may read the host buffer after returning; writing into
            // it after waitUntilWritable() must not change what arrives.
            let staged = uniform(rows, columns)
            let h = pair(uniform(rows, columns), rows, columns)
            check("copy host-buffer-device \(rows)x\(columns)", [Output(label: "target", pair: h, exact: true)]) { acc, side in
                let buffer = acc.allocateHostBuffer(rows * columns + 3)
                for (i, v) in staged.enumerated() { buffer.baseAddress[i] = v }
                acc.copy(buffer, to: side(h))
                buffer.waitUntilWritable()
                buffer.prefix(rows * columns).update(repeating: .nan)
            }
            for value: Float in [0, 2.5] {
                let z = pair(uniform(rows, columns), rows, columns)
                check("fill \(rows)x\(columns) value=\(value)", [Output(label: "x", pair: z, exact: true)]) { acc, side in
                    acc.fill(side(z), with: value)
                }
            }
        }
    }

    // MARK: - Checks: linear algebra

    func linearAlgebraChecks() {
        for (m, k, n) in [(1, 1, 1), (7, 13, 5), (128, 784, 32), (3, 0, 4)] {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    for (alpha, beta): (Float, Float) in [(1, 0), (0.75, 0.5), (1, 1)] {
                        let scale = 1 / Float(max(k, 1)).squareRoot()
                        let a = pair(uniform(m, k).map { $0 * scale }, transposeA ? k : m, transposeA ? m : k)
                        let b = pair(uniform(k, n), transposeB ? n : k, transposeB ? k : n)
                        let c = pair(uniform(m, n), m, n)
                        let kind = (transposeA ? "T" : "N") + (transposeB ? "T" : "N")
                        check("gemm \(kind) m=\(m) k=\(k) n=\(n) alpha=\(alpha) beta=\(beta)", [Output(label: "C", pair: c)]) { acc, side in
                            acc.gemm(transposeA: transposeA, transposeB: transposeB, alpha: alpha, side(a), side(b),
                                     beta: beta, side(c))
                        }
                    }
                }
            }
        }
        for (rows, columns) in Suite.shapes {
            let bias = pair(uniform(1, columns), 1, columns)
            let x = pair(uniform(rows, columns), rows, columns)
            check("addBias \(rows)x\(columns)", [Output(label: "x", pair: x)]) { acc, side in acc.addBias(side(bias), to: side(x)) }

            for beta: Float in [0, 1, 0.5] {
                let x = pair(uniform(rows, columns), rows, columns)
                let target = pair(uniform(1, columns), 1, columns)
                check("sumRows \(rows)x\(columns) beta=\(beta)", [Output(label: "target", pair: target)]) { acc, side in
                    acc.sumRows(side(x), into: side(target), beta: beta)
                }
            }

            let a = pair(uniform(rows, columns), rows, columns), b = pair(uniform(rows, columns), rows, columns)
            let product = pair(uniform(rows, columns), rows, columns)
            check("multiply \(rows)x\(columns)", [Output(label: "target", pair: product)]) { acc, side in
                acc.multiply(side(a), side(b), into: side(product))
            }
            check("multiply in place \(rows)x\(columns)", [Output(label: "a", pair: a)]) { acc, side in
                acc.multiply(side(a), side(b), into: side(a))
            }
        }
    }

    // MARK: - Checks: activations

    static let activations: [Activation] = [.linear, .step, .sign, .sigmoid, .tanh, .relu, .leakyRelu(slope: 0.2), .softmax]

    /// A plausible forward output of `activation` (what backward receives).
    func forwardOutput(_ activation: Activation, _ rows: Int, _ columns: Int) -> [Float] {
        switch activation {
        case .sigmoid: uniform(rows, columns, 0, 1)
        case .relu: uniform(rows, columns).map { max($0, 0) }
        case .softmax: distributions(rows, columns)
        case .step: uniform(rows, columns).map { $0 >= 0 ? 1 : 0 }
        case .sign: uniform(rows, columns).map { $0 >= 0 ? 1 : -1 }
        default: uniform(rows, columns)
        }
    }

    func activationChecks() {
        for activation in Suite.activations {
            let exact = activation == .step || activation == .sign
            for (rows, columns) in Suite.shapes {
                let shape = "\(rows)x\(columns)"
                let x = pair(uniform(rows, columns, -4, 4), rows, columns)
                let y = pair(uniform(rows, columns), rows, columns)
                check("activate \(activation.name) \(shape)", [Output(label: "output", pair: y, exact: exact)]) { acc, side in
                    acc.activate(activation, side(x), into: side(y))
                }

                let a = pair(forwardOutput(activation, rows, columns), rows, columns)
                let g = pair(uniform(rows, columns), rows, columns)
                let d = pair(uniform(rows, columns), rows, columns)
                check("activationBackward \(activation.name) \(shape)", [Output(label: "result", pair: d, exact: exact)]) { acc, side in
                    acc.activationBackward(activation, output: side(a), gradient: side(g), into: side(d))
                }
            }
            // In place: output over input, and result over gradient.
            let x = pair(uniform(7, 13, -4, 4), 7, 13)
            check("activate \(activation.name) in place 7x13", [Output(label: "x", pair: x, exact: exact)]) { acc, side in
                acc.activate(activation, side(x), into: side(x))
            }
            let a = pair(forwardOutput(activation, 7, 13), 7, 13), g = pair(uniform(7, 13), 7, 13)
            check("activationBackward \(activation.name) in place 7x13", [Output(label: "gradient", pair: g, exact: exact)]) { acc, side in
                acc.activationBackward(activation, output: side(a), gradient: side(g), into: side(g))
            }
        }
    }

    // MARK: - Checks: losses

    func lossChecks() {
        let statisticsExactCorrect: Set<Int> = [Statistic.correct.rawValue]

        for (rows, classes) in Suite.shapes + [(5, 2)] {
            for targetKind in ["sparse", "one-hot", "soft"] {
                for withGradient in [true, false] where withGradient || (rows, classes) == (7, 13) {
                    let shape = "\(rows)x\(classes)"
                    let logits = pair(uniform(rows, classes, -5, 5), rows, classes)
                    let (hot, labels) = oneHot(rows, classes)
                    let sparse = targetKind == "sparse"
                    let targets = sparse ? pair(labels, rows, 1)
                        : pair(targetKind == "soft" ? distributions(rows, classes).map { $0 * 0.9 } : hot, rows, classes)
                    let probabilities = pair(uniform(rows, classes), rows, classes)
                    let gradient = pair(uniform(rows, classes), rows, classes)
                    let stats = statistics()
                    var outputs = [Output(label: "probabilities", pair: probabilities),
                                   Output(label: "statistics", pair: stats, exactIndices: statisticsExactCorrect)]
                    outputs.append(Output(label: "gradient", pair: gradient, exact: !withGradient))
                    check("softmaxCrossEntropy \(targetKind) \(shape)\(withGradient ? "" : " no gradient")", outputs) { acc, side in
                        acc.softmaxCrossEntropy(logits: side(logits), targets: side(targets), sparse: sparse,
                                                probabilities: side(probabilities),
                                                gradient: withGradient ? side(gradient) : nil,
                                                gradientScale: 1 / Float(rows), statistics: side(stats))
                    }
                }
            }
        }

        for (rows, columns) in Suite.shapes {
            for soft in [false, true] {
                let logits = pair(uniform(rows, columns, -6, 6), rows, columns)
                let targets = pair(soft ? uniform(rows, columns, 0, 1) : uniform(rows, columns).map { $0 >= 0 ? 1 : 0 }, rows, columns)
                let probabilities = pair(uniform(rows, columns), rows, columns)
                let gradient = pair(uniform(rows, columns), rows, columns)
                let stats = statistics()
                check("sigmoidBinaryCrossEntropy \(soft ? "soft" : "0/1") \(rows)x\(columns)",
                      [Output(label: "probabilities", pair: probabilities), Output(label: "gradient", pair: gradient),
                       Output(label: "statistics", pair: stats, exactIndices: statisticsExactCorrect)]) { acc, side in
                    acc.sigmoidBinaryCrossEntropy(logits: side(logits), targets: side(targets), probabilities: side(probabilities),
                                                  gradient: side(gradient), gradientScale: 1 / Float(rows), statistics: side(stats))
                }
            }
        }

        let rules: [(AccuracyRule, String)] = [(.none, "none"), (.argmax, "argmax"), (.threshold(0.5), "threshold 0.5"), (.threshold(0), "threshold 0")]
        for (rows, columns) in Suite.shapes {
            for (accuracy, ruleName) in rules {
                // The factors of a mean over the outputs and of the perceptron rule.
                for (factorName, factor) in [("", 2 / Float(rows) / Float(columns)), (" perceptron", 1 / Float(rows))] {
                    for withGradient in [true, false] where withGradient || factorName.isEmpty {
                        let outputs = pair(uniform(rows, columns, -1.5, 1.5), rows, columns)
                        let targetValues: [Float]
                        switch accuracy {
                        case .argmax: targetValues = oneHot(rows, columns).oneHot
                        case .threshold(let cut): targetValues = uniform(rows, columns).map { $0 >= 0 ? 1 : (cut == 0 ? -1 : 0) }
                        case .none: targetValues = uniform(rows, columns)
                        }
                        let targets = pair(targetValues, rows, columns)
                        let gradient = pair(uniform(rows, columns), rows, columns)
                        let stats = statistics()
                        let name = "squaredError \(ruleName)\(factorName)\(withGradient ? "" : " no gradient") \(rows)x\(columns)"
                        check(name, [Output(label: "gradient", pair: gradient, exact: !withGradient),
                                     Output(label: "statistics", pair: stats, exactIndices: statisticsExactCorrect)]) { acc, side in
                            acc.squaredError(outputs: side(outputs), targets: side(targets),
                                             gradient: withGradient ? side(gradient) : nil, gradientFactor: factor,
                                             accuracy: accuracy, statistics: side(stats))
                        }
                    }
                }
            }
        }
    }

    // MARK: - Checks: regularization

    func regularizationChecks() {
        for (rows, columns) in Suite.shapes {
            for rate: Float in [0, 0.25, 0.5] {
                for rowOffset in [0, 37] {
                    let key = random.next()
                    let x = pair(uniform(rows, columns), rows, columns)
                    let mask = pair(uniform(rows, columns), rows, columns)
                    let y = pair(uniform(rows, columns), rows, columns)
                    check("dropout rate=\(rate) rowOffset=\(rowOffset) \(rows)x\(columns)",
                          [Output(label: "mask", pair: mask, exact: true), Output(label: "output", pair: y, exact: true)]) { acc, side in
                        acc.dropout(side(x), rate: rate, key: key, rowOffset: rowOffset, mask: side(mask), into: side(y))
                    }
                }
            }
            for (l1, l2): (Float, Float) in [(0, 0.01), (0.001, 0), (0.001, 0.01)] {
                // Every 10th weight exactly zero, where sign(w) is 0.
                let w = pair(uniform(rows, columns).enumerated().map { $0.offset % 10 == 3 ? 0 : $0.element }, rows, columns)
                let g = pair(uniform(rows, columns), rows, columns)
                let stats = statistics()
                check("addPenalty l1=\(l1) l2=\(l2) \(rows)x\(columns)",
                      [Output(label: "gradient", pair: g),
                       Output(label: "statistics", pair: stats, exactIndices: [1, 2, 3])]) { acc, side in
                    acc.addPenalty(weights: side(w), gradient: side(g), l1: l1, l2: l2, weight: 0.5, statistics: side(stats))
                }
            }
        }
    }

    // MARK: - Checks: optimizer

    func optimizerChecks() {
        let rules: [(UpdateRule, String)] = [
            (.sgd(momentum: 0, nesterov: false), "sgd"),
            (.sgd(momentum: 0.9, nesterov: false), "sgd momentum"),
            (.sgd(momentum: 0.9, nesterov: true), "sgd nesterov"),
            (.rmsprop(rho: 0.9, momentum: 0, epsilon: 1e-7), "rmsprop"),
            (.rmsprop(rho: 0.9, momentum: 0.5, epsilon: 1e-7), "rmsprop momentum"),
            (.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7), "adam"),
        ]
        for (rule, ruleName) in rules {
            for weightDecay: Float in [0, 0.004] {
                for (rows, columns) in Suite.shapes {
                    let parameters = pair(uniform(rows, columns), rows, columns)
                    // Second-moment slots (rms, v) are non-negative; the others signed.
                    let state = rule.slots.map { slot in
                        pair(slot == "rms" || slot == "v" ? uniform(rows, columns, 0, 0.01) : uniform(rows, columns, -0.1, 0.1), rows, columns)
                    }
                    let gradients = (1...3).map { _ in pair(uniform(rows, columns), rows, columns) }
                    var outputs = [Output(label: "parameters", pair: parameters)]
                    outputs += zip(rule.slots, state).map { Output(label: "state \($0.0)", pair: $0.1) }
                    // Steps 1–3 apply under a clear guard record; step 4 finds
                    // it set by step 3's gradients and changes nothing.
                    let clear = pair(FiniteGuard.values(nil), 1, FiniteGuard.width)
                    let flagged = pair(FiniteGuard.values(.init(step: 4, count: 1, source: .gradients, firstIndex: 0)),
                                       1, FiniteGuard.width)
                    let steps = (1...4).map { rule.constants(step: $0, learningRate: 0.01, weightDecay: weightDecay) }
                    check("update \(ruleName) weightDecay=\(weightDecay) 3 steps then 1 flagged \(rows)x\(columns)",
                          outputs + [Output(label: "record", pair: clear, exact: true)]) { acc, side in
                        for (index, g) in gradients.enumerated() {
                            acc.update(steps[index], parameters: side(parameters), gradients: side(g), state: state.map(side),
                                       guarded: index == 0 ? nil : UpdateGuard(record: side(clear), step: index + 1))
                        }
                        acc.update(steps[3], parameters: side(parameters), gradients: side(gradients[0]), state: state.map(side),
                                   guarded: UpdateGuard(record: side(flagged), step: 4))
                    }
                    // An update that overflows: a few huge gradients take their
                    // weights (or state) to ±inf. Applied, then as a trial.
                    for trial in [false, true] {
                        var huge = uniform(rows, columns)
                        for i in 0..<max(1, huge.count / 53) { huge[random.nextInt(below: huge.count)] = i % 2 == 0 ? 3e38 : -3e38 }
                        let g = pair(huge, rows, columns)
                        let record = pair(FiniteGuard.values(nil), 1, FiniteGuard.width)
                        let overflow = rule.constants(step: 1, learningRate: 1e30, weightDecay: weightDecay)
                        let name = "update \(ruleName) weightDecay=\(weightDecay) overflowing\(trial ? " trial" : "") \(rows)x\(columns)"
                        check(name, outputs + [Output(label: "record", pair: record, exact: true)]) { acc, side in
                            acc.update(overflow, parameters: side(parameters), gradients: side(g), state: state.map(side),
                                       guarded: UpdateGuard(record: side(record), step: 7, trial: trial))
                        }
                    }
                }
            }
        }
    }

    // MARK: - Checks: non-finite values

    /// The guard record must come out bit for bit: the first bad step, its count and first index.
    func nonFiniteChecks() {
        for (rows, columns) in [(1, 1), (1, 17), (7, 13), (128, 784)] {
            for poison in [false, true] {
                var values = uniform(rows, columns)
                if poison {
                    let specials: [Float] = [.nan, .infinity, -.infinity, .signalingNaN, 2e19, -1e30]
                    for i in 0..<max(1, values.count / 97) {
                        values[random.nextInt(below: values.count)] = specials[i % specials.count]
                    }
                }
                let x = pair(values, rows, columns)
                for earlier in [0, 5] {
                    let flag = pair(FiniteGuard.values(earlier == 0 ? nil : .init(step: earlier, count: 2, source: .gradients, firstIndex: 1)),
                                    1, FiniteGuard.width)
                    let name = "checkFinite \(poison ? "with NaN/inf" : "all finite")\(earlier == 0 ? "" : " after step \(earlier) was flagged") \(rows)x\(columns)"
                    check(name, [Output(label: "record", pair: flag, exact: true)]) { acc, side in
                        acc.checkFinite(side(x), step: 9, flag: side(flag))
                    }
                }
            }
        }
    }
}

/// `1.2e-05`-style text for an error.
func formatted(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    if value == 0 { return "0" }
    var exponent = 0, mantissa = value
    while mantissa >= 10 { mantissa /= 10; exponent += 1 }
    while mantissa < 1 { mantissa *= 10; exponent -= 1 }
    let rounded = (mantissa * 10).rounded() / 10
    return "\(rounded)e\(exponent)"
}
