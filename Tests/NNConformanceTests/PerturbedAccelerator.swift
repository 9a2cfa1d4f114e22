// A deliberately wrong accelerator: the CPU backend with one op spoiled, to
// show that the conformance suite can fail, and fails where it should.

import NNCore

final class PerturbedAccelerator: Accelerator {
    let base = CPUAccelerator(threads: 1)
    /// When set, multiply's first output value is off by this relative amount.
    var multiplyError: Float?
    /// When set, addBias also writes one value past the end of x (into the suite's guard).
    var addBiasWritesPastTheEnd = false
    /// When set, sumRows always adds to the target as if β were 1.
    var sumRowsIgnoresBeta = false
    /// Added to dropout's key: a different mask.
    var dropoutKeyOffset: UInt64 = 0

    var name: String { "perturbed \(base.name)" }
    var isHostMemory: Bool { true }

    func allocate(_ count: Int) -> DeviceStorage { base.allocate(count) }
    func copy(_ source: UnsafeBufferPointer<Float>, to target: Tensor) { base.copy(source, to: target) }
    func copy(_ source: Tensor, to target: UnsafeMutableBufferPointer<Float>) { base.copy(source, to: target) }
    func fill(_ tensor: Tensor, with value: Float) { base.fill(tensor, with: value) }

    func gemm(_ shape: GEMMShape, alpha: Float, _ a: Tensor, _ b: Tensor, beta: Float, _ c: Tensor) {
        base.gemm(shape, alpha: alpha, a, b, beta: beta, c)
    }
    func addBias(_ bias: Tensor, to x: Tensor) {
        base.addBias(bias, to: x)
        if addBiasWritesPastTheEnd { x.hostPointer[x.count] = 0 }
    }
    func sumRows(_ x: Tensor, into target: Tensor, beta: Float) {
        base.sumRows(x, into: target, beta: sumRowsIgnoresBeta ? 1 : beta)
    }

    func multiply(_ a: Tensor, _ b: Tensor, into target: Tensor) {
        base.multiply(a, b, into: target)
        if let error = multiplyError, target.count > 0 {
            // Relative to the value, with the suite's floor of atol/rtol = 0.1 for small ones.
            let v = target.hostPointer[0]
            target.hostPointer[0] = v + error * max(abs(v), 0.1) * 1.01
        }
    }

    func activate(_ activation: Activation, _ input: Tensor, into output: Tensor) {
        base.activate(activation, input, into: output)
    }
    func activationBackward(_ activation: Activation, output: Tensor, gradient: Tensor, into result: Tensor) {
        base.activationBackward(activation, output: output, gradient: gradient, into: result)
    }

    func softmaxCrossEntropy(logits: Tensor, targets: Tensor, sparse: Bool, probabilities: Tensor,
                             gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        base.softmaxCrossEntropy(logits: logits, targets: targets, sparse: sparse, probabilities: probabilities,
                                 gradient: gradient, gradientScale: gradientScale, statistics: statistics)
    }
    func sigmoidBinaryCrossEntropy(logits: Tensor, targets: Tensor, probabilities: Tensor,
                                   gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        base.sigmoidBinaryCrossEntropy(logits: logits, targets: targets, probabilities: probabilities,
                                       gradient: gradient, gradientScale: gradientScale, statistics: statistics)
    }
    func squaredError(outputs: Tensor, targets: Tensor, gradient: Tensor?, gradientFactor: Float,
                      accuracy: AccuracyRule, statistics: Tensor) {
        base.squaredError(outputs: outputs, targets: targets, gradient: gradient, gradientFactor: gradientFactor,
                          accuracy: accuracy, statistics: statistics)
    }

    func dropout(_ input: Tensor, rate: Float, key: UInt64, rowOffset: Int, mask: Tensor, into output: Tensor) {
        base.dropout(input, rate: rate, key: key &+ dropoutKeyOffset, rowOffset: rowOffset, mask: mask, into: output)
    }
    func addPenalty(weights: Tensor, gradient: Tensor, l1: Float, l2: Float, weight: Float, statistics: Tensor) {
        base.addPenalty(weights: weights, gradient: gradient, l1: l1, l2: l2, weight: weight, statistics: statistics)
    }

    func update(_ step: UpdateStep, parameters: Tensor, gradients: Tensor, state: [Tensor], guarded: UpdateGuard?) {
        base.update(step, parameters: parameters, gradients: gradients, state: state, guarded: guarded)
    }
    func checkFinite(_ tensor: Tensor, step: Int, flag: Tensor) { base.checkFinite(tensor, step: step, flag: flag) }
}
