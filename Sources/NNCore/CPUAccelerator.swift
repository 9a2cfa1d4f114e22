// The CPU backend: matrix products through OpenBLAS, the optimizer updates
// and elementwise activations in C (CKernels, with the per-element arithmetic
// the CUDA kernels share), everything else as tight loops over raw pointers
// that the compiler vectorizes.
//
// B = batch rows, O = outputs per row, n = element count.

import CBLAS
import CKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The CPU accelerator (OpenBLAS `cblas_sgemm` + vectorizable loops).
public final class CPUAccelerator: Accelerator {
    /// Threads OpenBLAS uses for each matrix product.
    public let threads: Int

    /// Sets OpenBLAS to `threads` threads (process-wide).
    public init(threads: Int) {
        self.threads = max(1, threads)
        openblas_set_num_threads(Int32(self.threads))
    }

    public var isHostMemory: Bool { true }

    public var name: String { "cpu (OpenBLAS, \(threads) thread\(threads == 1 ? "" : "s"))" }

    // MARK: - Memory

    public func allocate(_ count: Int) -> DeviceStorage {
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        return DeviceStorage(count: count, address: UInt(bitPattern: raw)) { address in
            free(UnsafeMutableRawPointer(bitPattern: address))
        }
    }

    public func copy(_ source: UnsafeBufferPointer<Float>, to target: Tensor) {
        precondition(source.count == target.count)
        if let base = source.baseAddress, source.count > 0 {
            target.hostPointer.update(from: base, count: source.count)
        }
    }

    public func copy(_ source: Tensor, to target: UnsafeMutableBufferPointer<Float>) {
        precondition(source.count == target.count)
        if let base = target.baseAddress, target.count > 0 {
            base.update(from: source.hostPointer, count: source.count)
        }
    }

    public func fill(_ tensor: Tensor, with value: Float) {
        if tensor.count == 0 { return }
        if value == 0 {
            memset(tensor.hostPointer, 0, tensor.count * MemoryLayout<Float>.stride)
        } else {
            tensor.hostPointer.update(repeating: value, count: tensor.count)
        }
    }

    // MARK: - Linear algebra

    public func gemm(_ shape: GEMMShape, alpha: Float, _ a: Tensor, _ b: Tensor, beta: Float, _ c: Tensor) {
        cblas_sgemm(CblasRowMajor,
                    shape.transposeA ? CblasTrans : CblasNoTrans,
                    shape.transposeB ? CblasTrans : CblasNoTrans,
                    Int32(shape.m), Int32(shape.n), Int32(shape.k),
                    alpha, a.hostPointer, Int32(max(a.columns, 1)),
                    b.hostPointer, Int32(max(b.columns, 1)),
                    beta, c.hostPointer, Int32(max(c.columns, 1)))
    }

    private func scale(_ x: Tensor, by factor: Float) {
        let p = x.hostPointer
        for i in 0..<x.count { p[i] *= factor }
    }

    public func addBias(_ bias: Tensor, to x: Tensor) {
        precondition(bias.count == x.columns)
        let o = x.columns, b = bias.hostPointer
        var row = x.hostPointer
        for _ in 0..<x.rows {
            let r = row
            forEachLane(o, vector: { store(load(r, $0) + load(b, $0), r, $0) }, scalar: { r[$0] += b[$0] })
            row += o
        }
    }

    public func sumRows(_ x: Tensor, into target: Tensor, beta: Float) {
        precondition(target.count == x.columns)
        let o = x.columns, t = target.hostPointer
        if beta == 0 { fill(target, with: 0) } else if beta != 1 { scale(target, by: beta) }
        var row = x.hostPointer
        for _ in 0..<x.rows {
            let r = row
            forEachLane(o, vector: { store(load(t, $0) + load(r, $0), t, $0) }, scalar: { t[$0] += r[$0] })
            row += o
        }
    }

    public func multiply(_ a: Tensor, _ b: Tensor, into target: Tensor) {
        precondition(a.count == b.count && a.count == target.count)
        let ap = a.hostPointer, bp = b.hostPointer, tp = target.hostPointer
        forEachLane(a.count, vector: { store(load(ap, $0) * load(bp, $0), tp, $0) }, scalar: { tp[$0] = ap[$0] * bp[$0] })
    }

    // MARK: - Activations

    public func activate(_ activation: Activation, _ input: Tensor, into output: Tensor) {
        precondition(input.count == output.count)
        let x = input.hostPointer, y = output.hostPointer, n = input.count
        switch activation {
        case .linear:
            if x != y { y.update(from: x, count: n) }
        case .softmax:
            let k = input.columns
            for r in 0..<input.rows { softmaxRow(x + r * k, y + r * k, k) }
        default:
            nn_activate_loop(x, y, n, activation.code, activation.slope)
        }
    }

    public func activationBackward(_ activation: Activation, output: Tensor, gradient: Tensor, into result: Tensor) {
        precondition(output.count == gradient.count && output.count == result.count)
        let a = output.hostPointer, g = gradient.hostPointer, d = result.hostPointer, n = output.count
        switch activation {
        case .linear:
            if g != d { d.update(from: g, count: n) }
        case .softmax:
            let k = output.columns
            for r in 0..<output.rows {
                let ar = a + r * k, gr = g + r * k, dr = d + r * k
                var dot: Float = 0
                for j in 0..<k { dot += ar[j] * gr[j] }
                for j in 0..<k { dr[j] = ar[j] * (gr[j] - dot) }
            }
        default:
            nn_activation_backward_loop(a, g, d, n, activation.code, activation.slope)
        }
    }

    // MARK: - Losses

    public func softmaxCrossEntropy(logits: Tensor, targets: Tensor, sparse: Bool, probabilities: Tensor,
                                    gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        let k = logits.columns, rows = logits.rows
        precondition(probabilities.count == logits.count)
        precondition(targets.rows == rows && targets.columns == (sparse ? 1 : k))
        let z = logits.hostPointer, p = probabilities.hostPointer, t = targets.hostPointer
        let grad = gradient?.hostPointer
        var lossSum: Double = 0, correct: Double = 0
        for r in 0..<rows {
            let zr = z + r * k, pr = p + r * k
            // log-sum-exp around the row maximum: exp never overflows.
            var best = 0
            for j in 1..<max(k, 1) where zr[j] > zr[best] { best = j }
            let m = zr[best]
            var s: Float = 0
            for j in 0..<k { let e = expf(zr[j] - m); pr[j] = e; s += e }
            let logS = logf(s), inv = 1 / s
            for j in 0..<k { pr[j] *= inv }
            if sparse {
                let label = Int(t[r])
                lossSum += Double(logS + m - zr[label])
                if label == best { correct += 1 }
                if let grad {
                    let gr = grad + r * k
                    for j in 0..<k { gr[j] = gradientScale * pr[j] }
                    gr[label] -= gradientScale
                }
            } else {
                let tr = t + r * k
                var loss: Float = 0, mass: Float = 0, label = 0
                for j in 0..<k {
                    loss += tr[j] * (logS + m - zr[j])
                    mass += tr[j]
                    if tr[j] > tr[label] { label = j }
                }
                lossSum += Double(loss)
                if label == best { correct += 1 }
                if let grad {
                    let gr = grad + r * k
                    for j in 0..<k { gr[j] = gradientScale * (pr[j] * mass - tr[j]) }
                }
            }
        }
        accumulate(statistics, loss: lossSum, correct: correct)
    }

    public func sigmoidBinaryCrossEntropy(logits: Tensor, targets: Tensor, probabilities: Tensor,
                                          gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        precondition(targets.count == logits.count && probabilities.count == logits.count)
        let o = logits.columns, n = logits.count
        let z = logits.hostPointer, t = targets.hostPointer, p = probabilities.hostPointer
        let grad = gradient?.hostPointer
        let perOutput = gradientScale / Float(max(o, 1))
        var lossSum: Double = 0, correct: Double = 0
        for i in 0..<n {
            let zi = z[i], ti = t[i]
            // max(z, 0) − z·y + log(1 + e^−|z|): stable for any z.
            lossSum += Double(max(zi, 0) - zi * ti + log1pf(expf(-abs(zi))))
            let pi = nn_sigmoid(zi)
            p[i] = pi
            if (pi >= 0.5) == (ti >= 0.5) { correct += 1 }
            if let grad { grad[i] = perOutput * (pi - ti) }
        }
        accumulate(statistics, loss: lossSum / Double(max(o, 1)), correct: correct)
    }

    public func squaredError(outputs: Tensor, targets: Tensor, gradient: Tensor?, gradientFactor factor: Float,
                             accuracy: AccuracyRule, statistics: Tensor) {
        precondition(targets.count == outputs.count)
        let o = outputs.columns, n = outputs.count
        let y = outputs.hostPointer, t = targets.hostPointer
        var squared: Double = 0, absolute: Double = 0
        if let grad = gradient?.hostPointer {
            for i in 0..<n { grad[i] = factor * (y[i] - t[i]) }
        }
        for i in 0..<n {
            let e = Double(y[i] - t[i])
            squared += e * e
            absolute += abs(e)
        }
        var correct: Double = 0
        switch accuracy {
        case .none: break
        case .threshold(let cut):
            for i in 0..<n where (y[i] >= cut) == (t[i] >= cut) { correct += 1 }
        case .argmax:
            for r in 0..<outputs.rows {
                let yr = y + r * o, tr = t + r * o
                var by = 0, bt = 0
                for j in 0..<o {
                    if yr[j] > yr[by] { by = j }
                    if tr[j] > tr[bt] { bt = j }
                }
                if by == bt { correct += 1 }
            }
        }
        let s = statistics.hostPointer
        s[Statistic.lossSum.rawValue] += Float(squared / Double(max(o, 1)))
        s[Statistic.correct.rawValue] += Float(correct)
        s[Statistic.squaredErrorSum.rawValue] += Float(squared)
        s[Statistic.absoluteErrorSum.rawValue] += Float(absolute)
    }

    private func accumulate(_ statistics: Tensor, loss: Double, correct: Double) {
        let s = statistics.hostPointer
        s[Statistic.lossSum.rawValue] += Float(loss)
        s[Statistic.correct.rawValue] += Float(correct)
    }

    // MARK: - Regularization

    public func dropout(_ input: Tensor, rate: Float, key: UInt64, rowOffset: Int, mask: Tensor, into output: Tensor) {
        precondition(input.count == mask.count && input.count == output.count)
        let x = input.hostPointer, m = mask.hostPointer, y = output.hostPointer
        let keep = 1 / (1 - rate), base = UInt64(rowOffset * input.columns)
        for i in 0..<input.count {
            let v: Float = counterUniform(key: key, counter: base &+ UInt64(i)) >= rate ? keep : 0
            m[i] = v
            y[i] = x[i] * v
        }
    }

    public func addPenalty(weights: Tensor, gradient: Tensor, l1: Float, l2: Float, weight: Float, statistics: Tensor) {
        precondition(weights.count == gradient.count)
        let w = weights.hostPointer, g = gradient.hostPointer
        var squares: Float = 0, absolutes: Float = 0
        let twoL2 = 2 * l2
        for i in 0..<weights.count {
            let v = w[i]
            squares += v * v
            absolutes += abs(v)
            g[i] += twoL2 * v + (v > 0 ? l1 : (v < 0 ? -l1 : 0))
        }
        statistics.hostPointer[Statistic.lossSum.rawValue] += weight * (l2 * squares + l1 * absolutes)
    }

    // MARK: - Optimizer

    public func update(_ step: UpdateStep, parameters: Tensor, gradients: Tensor, state: [Tensor],
                       guarded: UpdateGuard?) {
        precondition(parameters.count == gradients.count && state.count == step.slotCount)
        if let guarded, Self.skips(guarded) { return }
        let store = guarded?.trial != true
        let bad = Self.update(step, parameters.hostPointer, gradients.hostPointer, state.map(\.hostPointer),
                              count: parameters.count, store: store, check: guarded != nil)
        guard bad, let guarded else { return }
        // Rare: count the parameters whose new weight is non-finite, in the
        // values written or, for a trial, in those it would have written.
        var weights = parameters
        if !store {
            weights = tensor(values(parameters), rows: parameters.rows, columns: parameters.columns)
            let copies = state.map { tensor(values($0), rows: $0.rows, columns: $0.columns) }
            _ = Self.update(step, weights.hostPointer, gradients.hostPointer, copies.map(\.hostPointer),
                            count: parameters.count, store: true, check: false)
        }
        let p = weights.hostPointer, n = parameters.count
        let count = (0..<n).lazy.filter { !p[$0].isFinite }.count
        FiniteGuard.set(guarded.record.hostPointer, FiniteGuard.Record(step: guarded.step, count: count, source: .update,
                                                                       firstIndex: (0..<n).first { !p[$0].isFinite } ?? 0))
    }

    /// Whether a guarded update must change nothing: the record holds an
    /// earlier step, or this step's gradients.
    static func skips(_ guarded: UpdateGuard) -> Bool {
        guard let record = FiniteGuard.decode(guarded.record.hostPointer) else { return false }
        return record.step != guarded.step || record.source == .gradients
    }

    /// Runs CKernels' loop for `step`; with `check`, true when a value it
    /// computed is non-finite. Public for the benchmark of the check's cost.
    public static func update(_ step: UpdateStep, _ w: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                              _ state: [UnsafeMutablePointer<Float>], count n: Int, store: Bool, check: Bool) -> Bool {
        let write: Int32 = store ? 1 : 0, test: Int32 = check ? 1 : 0
        switch step {
        case .sgd(let lr, let momentum, let look, let direct, let keep):
            return nn_sgd_update(w, g, state.first, n, lr, momentum, look, direct, keep, write, test) != 0
        case .rmsprop(let lr, let rho, let rest, let epsilon, let momentum, let keep):
            return nn_rmsprop_update(w, g, state[0], state.count > 1 ? state[1] : nil, n,
                                     lr, rho, rest, epsilon, momentum, keep, write, test) != 0
        case .adam(let alpha, let c1, let c2, let epsilon, let keep):
            return nn_adam_update(w, g, state[0], state[1], n, alpha, c1, c2, epsilon, keep, write, test) != 0
        }
    }

    public func checkFinite(_ tensor: Tensor, step: Int, flag: Tensor) {
        precondition(flag.count == FiniteGuard.width && step > 0)
        guard !FiniteGuard.isSet(flag.hostPointer) else { return }
        let bad = countNonFinite(tensor)
        guard bad > 0 else { return }
        let p = tensor.hostPointer
        let first = (0..<tensor.count).first { !(p[$0] * p[$0]).isFinite } ?? 0
        FiniteGuard.set(flag.hostPointer, FiniteGuard.Record(step: step, count: bad, source: .gradients, firstIndex: first))
    }

    /// Number of values in `tensor` whose square is NaN or ±inf: NaN, ±inf,
    /// and |x| > 1.8e19 (see `Accelerator.checkFinite`).
    func countNonFinite(_ tensor: Tensor) -> Int {
        // x²·0 is 0 when x² is finite and NaN otherwise: a vectorized sum of
        // x²·0 over 16-wide lanes answers "all fine?" in one fast pass.
        let p = tensor.hostPointer, n = tensor.count
        var lanes = SIMD16<Float>()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 16 <= n {
            let x = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            lanes += x * x * 0
            i += 16
        }
        var tail: Float = 0
        while i < n { tail += p[i] * p[i] * 0; i += 1 }
        if lanes.sum() == 0 && tail == 0 { return 0 }
        var bad = 0
        for j in 0..<n where !(p[j] * p[j]).isFinite { bad += 1 }
        return bad
    }
}

// MARK: - Vector helpers
//
// Swift keeps IEEE semantics in plain loops (no reassociation, NaN-aware
// min/max), which stops the vectorizer on the hottest loops; these spell the
// 8-wide vector code out. Storage is 64-byte aligned but views start at any
// float, so loads and stores are unaligned.

typealias Lanes = SIMD8<Float>

@inline(__always)
func load(_ p: UnsafeMutablePointer<Float>, _ i: Int) -> Lanes {
    UnsafeRawPointer(p + i).loadUnaligned(as: Lanes.self)
}

@inline(__always)
func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Lanes.self)
}

/// Calls `vector(i)` for i = 0, 8, 16, … while 8 values remain, then
/// `scalar(i)` for the rest.
@inline(__always)
func forEachLane(_ n: Int, vector: (Int) -> Void, scalar: (Int) -> Void) {
    var i = 0
    while i + 8 <= n {
        vector(i)
        i += 8
    }
    while i < n {
        scalar(i)
        i += 1
    }
}

// MARK: - Scalar helpers

/// Softmax of one row of k values, shifted by the row maximum.
@inline(__always)
func softmaxRow(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
    guard k > 0 else { return }
    var m = x[0]
    for j in 1..<max(k, 1) { m = max(m, x[j]) }
    var s: Float = 0
    for j in 0..<k { let e = expf(x[j] - m); y[j] = e; s += e }
    let inv = 1 / s
    for j in 0..<k { y[j] *= inv }
}
