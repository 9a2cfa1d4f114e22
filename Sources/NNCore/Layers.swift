// Layers without autodiff: `forward` keeps what `backward` needs, `backward`
// accumulates into the parameter gradients and returns the input gradient.
//
// B = batch rows, I = inputs, O = outputs (units).

/// How a layer's weights start (biases always start at zero, as in Keras).
public enum Initializer: String, CaseIterable, Sendable {
    /// U(−l, l), l = √(6 / (I + O)) — Keras' default.
    case glorotUniform = "glorot_uniform"
    /// Truncated N(0, √(2 / I)), redrawn beyond two standard deviations (Keras' HeNormal).
    case heNormal = "he_normal"
    /// U(−l, l), l = √(6 / I).
    case heUniform = "he_uniform"
    /// All zeros.
    case zeros = "zeros"

    /// Draws an (O × I) weight matrix.
    public func weights(outputs: Int, inputs: Int, stream: inout RandomStream) -> [Float] {
        let n = outputs * inputs
        switch self {
        case .zeros:
            return [Float](repeating: 0, count: n)
        case .glorotUniform:
            let limit = (6.0 / Float(inputs + outputs)).squareRoot()
            return (0..<n).map { _ in stream.nextUniform(-limit, limit) }
        case .heUniform:
            let limit = (6.0 / Float(inputs)).squareRoot()
            return (0..<n).map { _ in stream.nextUniform(-limit, limit) }
        case .heNormal:
            let sigma = (2.0 / Float(inputs)).squareRoot()
            return (0..<n).map { _ in
                var z = stream.nextNormal()
                while abs(z) > 2 { z = stream.nextNormal() }
                return sigma * z
            }
        }
    }
}

/// What a layer is, as a config describes it.
public enum LayerSpec: Equatable, Sendable {
    /// A fully connected layer of perceptrons: a = g(x·Wᵀ + b).
    case dense(units: Int, activation: Activation, initializer: Initializer, l1: Float, l2: Float)
    /// Inverted dropout with the given drop probability; identity at evaluation.
    case dropout(rate: Float)
}

/// Per-pass facts a layer needs besides its input.
public struct Pass: Sendable {
    /// Training (dropout active, caches kept for backward) or evaluation.
    public var training: Bool
    /// The run's seed (dropout masks derive from it).
    public var seed: UInt64
    /// Global optimizer step, so each step draws fresh masks.
    public var step: Int
    /// Index of this batch's first row within the global batch (rank's offset),
    /// so a sample's dropout mask is the same whichever rank computes it.
    public var rowOffset: Int

    /// A pass; dropout draws from `seed`, `step` and `rowOffset` in training.
    public init(training: Bool, seed: UInt64 = 0, step: Int = 0, rowOffset: Int = 0) {
        self.training = training
        self.seed = seed
        self.step = step
        self.rowOffset = rowOffset
    }

    /// An evaluation pass.
    public static let evaluation = Pass(training: false)
}

/// A layer of a `Sequential` model.
public protocol Layer: AnyObject {
    /// Width of each output row.
    var outputSize: Int { get }
    /// Allocates workspaces for batches of up to `batch` rows.
    func reserve(batch: Int)
    /// Computes the output for `input` (B × I); the result stays valid until
    /// the next forward pass.
    func forward(_ input: Tensor, pass: Pass) -> Tensor
    /// Given ∂E/∂output (B × O, may be overwritten), *accumulates* ∂E/∂parameters
    /// into the gradient buffer, calls `parametersDone` once they are queued
    /// (before ∂E/∂input is computed, so their allreduce can start), and
    /// returns ∂E/∂input when `needsInputGradient`.
    func backward(_ outputGradient: Tensor, pass: Pass, needsInputGradient: Bool, parametersDone: () -> Void) -> Tensor?
}

extension Layer {
    /// `backward` with nobody waiting for the parameters' gradients.
    public func backward(_ outputGradient: Tensor, pass: Pass, needsInputGradient: Bool) -> Tensor? {
        backward(outputGradient, pass: pass, needsInputGradient: needsInputGradient, parametersDone: {})
    }
}

// MARK: - Dense

/// A fully connected layer: every output is a perceptron, z = x·Wᵀ + b, a = g(z).
public final class Dense: Layer {
    public let inputSize: Int
    public let outputSize: Int
    public let activation: Activation
    public let l1: Float
    public let l2: Float
    /// When set, forward stops at z (logits) and the loss applies the
    /// activation, fused with itself (softmax + cross-entropy, sigmoid + BCE).
    public var deferActivation = false
    /// When set, backward passes δ = ŷ − y straight through the (step or
    /// sign) activation: the perceptron learning rule Δw = η (y − ŷ) x.
    public var perceptronRule = false

    /// weight: (O × I), PyTorch `nn.Linear` layout; bias: (1 × O). Views into
    /// the model's flat parameter buffer, and the same for the gradients.
    public let weight: Tensor, bias: Tensor
    public let weightGradient: Tensor, biasGradient: Tensor

    private let accelerator: any Accelerator
    private var input: Tensor?
    /// output: (B × O) — z before the activation, a after it.
    private var output: Tensor?
    private var inputGradient: Tensor?

    init(inputSize: Int, outputSize: Int, activation: Activation, l1: Float, l2: Float,
         weight: Tensor, bias: Tensor, weightGradient: Tensor, biasGradient: Tensor,
         accelerator: any Accelerator) {
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.activation = activation
        self.l1 = l1
        self.l2 = l2
        self.weight = weight
        self.bias = bias
        self.weightGradient = weightGradient
        self.biasGradient = biasGradient
        self.accelerator = accelerator
    }

    /// Allocates the output and input-gradient workspaces.
    public func reserve(batch: Int) {
        if let output, output.rows >= batch { return }
        output = accelerator.tensor(rows: batch, columns: outputSize)
        inputGradient = accelerator.tensor(rows: batch, columns: inputSize)
    }

    /// z = x·Wᵀ + b, then a = g(z) in place (unless deferred to the loss).
    public func forward(_ input: Tensor, pass: Pass) -> Tensor {
        precondition(input.columns == inputSize)
        reserve(batch: input.rows)
        let z = output!.prefix(rows: input.rows)
        // z = x·Wᵀ (B × I)(I × O), then + b on every row.
        accelerator.gemm(transposeA: false, transposeB: true, alpha: 1, input, weight, beta: 0, z)
        accelerator.addBias(bias, to: z)
        if !deferActivation { accelerator.activate(activation, z, into: z) }
        self.input = input
        return z
    }

    /// Backpropagation as the course writes it: δ = g'(a) ⊙ ∂E/∂a, then
    /// ∂E/∂W += δᵀ·o (the previous layer's output), ∂E/∂b += Σ_rows δ, and the
    /// previous layer's ∂E/∂o = δ·W. Accumulates into the gradient buffer.
    /// When the activation is deferred to the loss, `outputGradient` is already δ.
    public func backward(_ outputGradient: Tensor, pass: Pass, needsInputGradient: Bool, parametersDone: () -> Void) -> Tensor? {
        guard let input else { preconditionFailure("backward before forward") }
        let delta = outputGradient
        if !deferActivation && !perceptronRule {
            accelerator.activationBackward(activation, output: output!.prefix(rows: delta.rows),
                                           gradient: delta, into: delta)
        }
        accelerator.gemm(transposeA: true, transposeB: false, alpha: 1, delta, input, beta: 1, weightGradient)
        accelerator.sumRows(delta, into: biasGradient, beta: 1)
        parametersDone()
        guard needsInputGradient else { return nil }
        let dx = inputGradient!.prefix(rows: delta.rows)
        accelerator.gemm(transposeA: false, transposeB: false, alpha: 1, delta, weight, beta: 0, dx)
        return dx
    }
}

// MARK: - Dropout

/// Inverted dropout: in training, each value is kept with probability
/// 1 − rate and scaled by 1/(1 − rate); at evaluation the layer is the identity.
public final class Dropout: Layer {
    public let rate: Float
    public let outputSize: Int
    /// Position among the model's layers, so each layer draws its own masks.
    let index: Int
    private let accelerator: any Accelerator
    /// mask and output: (B × O).
    private var mask: Tensor?
    private var output: Tensor?

    init(rate: Float, size: Int, index: Int, accelerator: any Accelerator) {
        self.rate = rate
        self.outputSize = size
        self.index = index
        self.accelerator = accelerator
    }

    /// Allocates the mask and output workspaces.
    public func reserve(batch: Int) {
        if let output, output.rows >= batch { return }
        mask = accelerator.tensor(rows: batch, columns: outputSize)
        output = accelerator.tensor(rows: batch, columns: outputSize)
    }

    /// Draws this step's mask and applies it; the identity at evaluation.
    public func forward(_ input: Tensor, pass: Pass) -> Tensor {
        guard pass.training, rate > 0 else { return input }
        reserve(batch: input.rows)
        let out = output!.prefix(rows: input.rows)
        let key = randomKey(seed: pass.seed, purpose: .dropout, UInt64(index), UInt64(pass.step))
        accelerator.dropout(input, rate: rate, key: key, rowOffset: pass.rowOffset,
                            mask: mask!.prefix(rows: input.rows), into: out)
        return out
    }

    /// ∂E/∂x = ∂E/∂y ⊙ mask (no parameters to accumulate into).
    public func backward(_ outputGradient: Tensor, pass: Pass, needsInputGradient: Bool, parametersDone: () -> Void) -> Tensor? {
        guard needsInputGradient else { return nil }
        guard pass.training, rate > 0 else { return outputGradient }
        accelerator.multiply(outputGradient, mask!.prefix(rows: outputGradient.rows), into: outputGradient)
        return outputGradient
    }
}
