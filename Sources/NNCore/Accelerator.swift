// The accelerator contract: an allocator and the dozen ops that training an
// MLP needs. Layers, losses and optimizers are composed above it, so a new
// backend implements this protocol and touches nothing else.
//
// Shapes use: B = batch rows, I = inputs, O = outputs (units), K = classes.
// Every tensor is row-major. Ops may run asynchronously on a device; results
// are visible to the host after `copy(_:to:)` into host memory, which waits.

/// A compute backend: memory plus the operations of one training step.
public protocol Accelerator: AnyObject {
    /// A short human name, e.g. `cpu (OpenBLAS, 2 threads)`.
    var name: String { get }
    /// Whether tensors live in host memory (then `Tensor.hostPointer` is
    /// valid and data can be written in place, without a copy).
    var isHostMemory: Bool { get }

    // MARK: - Memory

    /// Allocates `count` Float32 values, zero-filled.
    func allocate(_ count: Int) -> DeviceStorage
    /// Copies host values into a device tensor (`source.count == target.count`).
    func copy(_ source: UnsafeBufferPointer<Float>, to target: Tensor)
    /// Copies a device tensor into host memory, waiting for pending work.
    func copy(_ source: Tensor, to target: UnsafeMutableBufferPointer<Float>)
    /// Sets every value of `tensor` to `value`.
    func fill(_ tensor: Tensor, with value: Float)
    /// Host memory for transfers to and from this accelerator, zero-filled.
    func allocateHostBuffer(_ count: Int) -> HostBuffer
    /// Copies the first `target.count` values of `source` into a device tensor.
    /// The copy may still read `source` after returning (see `HostBuffer`).
    func copy(_ source: HostBuffer, to target: Tensor)

    // MARK: - Linear algebra

    /// C ← α·op(A)·op(B) + β·C for a `shape` with m, n and k all at least 1
    /// (callers use `gemm(transposeA:transposeB:alpha:_:_:beta:_:)`, which
    /// checks the shape and handles the empty cases).
    func gemm(_ shape: GEMMShape, alpha: Float, _ a: Tensor, _ b: Tensor, beta: Float, _ c: Tensor)
    /// Adds the row vector `bias` (1 × O) to every row of `x` (B × O).
    func addBias(_ bias: Tensor, to x: Tensor)
    /// target (1 × O) ← β·target + Σ_rows x (B × O): the bias gradient. `x`
    /// may have no rows: then target ← β·target (0 when β = 0).
    func sumRows(_ x: Tensor, into target: Tensor, beta: Float)
    /// target ← a ⊙ b, elementwise (in place allowed).
    func multiply(_ a: Tensor, _ b: Tensor, into target: Tensor)

    // MARK: - Activations

    /// output ← g(input), row-wise for softmax (in place allowed).
    func activate(_ activation: Activation, _ input: Tensor, into output: Tensor)
    /// result ← g'(z) ⊙ gradient, from the forward output a = g(z) (in place
    /// over `gradient` allowed). See `Activation` for the formulas.
    func activationBackward(_ activation: Activation, output: Tensor, gradient: Tensor, into result: Tensor)

    // MARK: - Losses (fused, numerically stable)
    //
    // Each adds per-sample losses and correct counts into `statistics`
    // (a 1 × Statistic.width tensor) and, when `gradient` is given, writes
    // ∂loss/∂(its input) · gradientScale (gradientScale is 1/B for a batch mean).

    /// Softmax + cross-entropy from logits (B × K) by log-sum-exp. `targets`
    /// holds class indices (B × 1) when `sparse`, else one-hot rows (B × K).
    /// Writes softmax probabilities; gradient = scale·(p − y).
    func softmaxCrossEntropy(logits: Tensor, targets: Tensor, sparse: Bool, probabilities: Tensor,
                             gradient: Tensor?, gradientScale: Float, statistics: Tensor)
    /// Sigmoid + binary cross-entropy from logits (B × O), averaged over O;
    /// gradient = scale·(σ(z) − y)/O. Writes σ(z) into `probabilities`.
    func sigmoidBinaryCrossEntropy(logits: Tensor, targets: Tensor, probabilities: Tensor,
                                   gradient: Tensor?, gradientScale: Float, statistics: Tensor)
    /// Mean squared error of outputs (B × O), averaged over O; gradient =
    /// factor·(ŷ − y), with the factor from `Objective.squaredErrorGradientFactor`.
    func squaredError(outputs: Tensor, targets: Tensor, gradient: Tensor?, gradientFactor: Float,
                      accuracy: AccuracyRule, statistics: Tensor)

    // MARK: - Regularization

    /// Inverted dropout: keeps each value with probability 1 − rate, scaled by
    /// 1/(1 − rate); writes the mask (0 or 1/(1 − rate)) and output = input ⊙ mask.
    /// Value (r, c) draws `counterUniform(key, (rowOffset + r)·columns + c)`, so a
    /// sample's mask does not depend on which rank computes it.
    func dropout(_ input: Tensor, rate: Float, key: UInt64, rowOffset: Int, mask: Tensor, into output: Tensor)
    /// Weight penalties: gradient += 2·l2·w + l1·sign(w), and
    /// statistics[lossSum] += weight·(l2·Σw² + l1·Σ|w|).
    func addPenalty(weights: Tensor, gradient: Tensor, l1: Float, l2: Float, weight: Float, statistics: Tensor)

    // MARK: - Optimizer

    /// One optimizer step over equal-sized flat buffers, with the constants
    /// `step` (see `UpdateStep` for the formulas); `state` holds the rule's
    /// slots in `UpdateRule.slots` order. With a guard it does nothing once
    /// the guard's record holds an earlier step or this step's gradients;
    /// otherwise, if a weight it computes is NaN or ±inf, it records the step
    /// (source `.update`), the number of such weights, and the first one. A trial writes only the record.
    /// (With gradients that passed `checkFinite`, a non-finite momentum
    /// makes its weight non-finite, and a second moment cannot overflow, so
    /// the weights tell.)
    func update(_ step: UpdateStep, parameters: Tensor, gradients: Tensor, state: [Tensor], guarded: UpdateGuard?)
    /// If `tensor` holds values whose square is NaN or ±inf (NaN, ±inf, and
    /// |x| > 1.8e19, whose square would overflow an optimizer's second
    /// moment) and the `FiniteGuard` record `flag` is clear, records `step`
    /// (1-based, source `.gradients`), the number of such values and the
    /// first one's index.
    func checkFinite(_ tensor: Tensor, step: Int, flag: Tensor)
}

/// The sizes of C ← α·op(A)·op(B) + β·C: C is (m × n), op(A) (m × k),
/// op(B) (k × n), op transposing A or B when asked. Creating one checks that
/// the three tensors fit together.
public struct GEMMShape: Equatable, Sendable {
    /// Rows of C and of op(A).
    public let m: Int
    /// Columns of C and of op(B).
    public let n: Int
    /// The inner dimension: columns of op(A), rows of op(B).
    public let k: Int
    /// Whether op(A) is Aᵀ.
    public let transposeA: Bool
    /// Whether op(B) is Bᵀ.
    public let transposeB: Bool

    /// The shape of a product; traps when the tensors do not fit (a bug, never user input).
    public init(transposeA: Bool, transposeB: Bool, _ a: Tensor, _ b: Tensor, _ c: Tensor) {
        m = transposeA ? a.columns : a.rows
        k = transposeA ? a.rows : a.columns
        n = transposeB ? b.rows : b.columns
        self.transposeA = transposeA
        self.transposeB = transposeB
        precondition((transposeB ? b.columns : b.rows) == k && c.rows == m && c.columns == n, "gemm shapes do not fit")
    }
}

extension Accelerator {
    /// C ← α·op(A)·op(B) + β·C, op transposing when asked. C is (M × N),
    /// op(A) is (M × K), op(B) is (K × N). β = 1 accumulates into C.
    ///
    /// Checks the shapes, then hands a non-empty product to the backend. With
    /// K = 0 the product is empty and C ← β·C, which is `sumRows` over no rows
    /// into C seen as one row.
    public func gemm(transposeA: Bool, transposeB: Bool, alpha: Float, _ a: Tensor, _ b: Tensor,
                     beta: Float, _ c: Tensor) {
        let shape = GEMMShape(transposeA: transposeA, transposeB: transposeB, a, b, c)
        if shape.m == 0 || shape.n == 0 { return }
        if shape.k == 0 {
            if beta == 1 { return }
            let noRows = Tensor(storage: c.storage, offset: c.offset, rows: 0, columns: c.count)
            sumRows(noRows, into: c.reshaped(rows: 1, columns: c.count), beta: beta)
            return
        }
        gemm(shape, alpha: alpha, a, b, beta: beta, c)
    }

    /// Plain host memory: right for accelerators whose copies finish before returning.
    public func allocateHostBuffer(_ count: Int) -> HostBuffer { HostBuffer(count: count) }

    /// Copies through the pageable-memory path.
    public func copy(_ source: HostBuffer, to target: Tensor) {
        copy(UnsafeBufferPointer(source.prefix(target.count)), to: target)
    }

    /// Allocates a zero-filled (rows × columns) tensor.
    public func tensor(rows: Int, columns: Int) -> Tensor {
        Tensor(storage: allocate(rows * columns), offset: 0, rows: rows, columns: columns)
    }

    /// Uploads host values into a new tensor.
    public func tensor(_ values: [Float], rows: Int, columns: Int) -> Tensor {
        precondition(values.count == rows * columns)
        let t = tensor(rows: rows, columns: columns)
        values.withUnsafeBufferPointer { copy($0, to: t) }
        return t
    }

    /// Downloads a tensor into a new array.
    public func values(_ tensor: Tensor) -> [Float] {
        var result = [Float](repeating: 0, count: tensor.count)
        result.withUnsafeMutableBufferPointer { copy(tensor, to: $0) }
        return result
    }
}
