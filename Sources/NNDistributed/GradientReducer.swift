// How the flat gradient buffer is summed across ranks, wherever it lives.
//
// The trainer calls `sum(_:)` once per step and knows nothing else. Host
// memory goes straight to the communicator; device memory is staged through
// one page-locked host buffer. A device-native collective (NCCL, which reads
// GPU memory itself) would be one more conformer here, chosen by
// `makeGradientReducer`, with the trainer unchanged.

import CKernels
import NNCore

/// Sums one flat buffer of gradients over every rank of a job, in place.
public protocol GradientReducer: AnyObject {
    /// How the sum travels, e.g. `allreduce on host memory`.
    var name: String { get }
    /// Replaces `gradients` with its element-wise sum over all ranks
    /// (identical on every rank afterwards).
    func sum(_ gradients: Tensor)
    /// What rounding to 16 bits has lost so far on this rank (error
    /// feedback), nil without compression.
    var residual: [Float]? { get }
    /// Restores a residual saved by a checkpoint (same length as the gradients).
    func restoreResidual(_ values: [Float])
    /// Whether it starts summing during backward (then `gradientsReady` is worth calling).
    var overlapsBackward: Bool { get }
    /// Backward has queued the final gradients `range` of the flat buffer;
    /// ranges come from the end of the buffer towards its start. `sum` must
    /// still be called, and sums whatever this did not start.
    func gradientsReady(_ gradients: Tensor, range: Range<Int>)
}

/// 16-bit formats the gradients can travel in (`--gradient-compression`).
public enum GradientCompression: String, Codable, CaseIterable, Sendable {
    /// bfloat16: float's range, 8 significant bits.
    case bf16
    /// IEEE binary16: 11 significant bits, finite up to 65504.
    case fp16

    /// The format's number in `CKernels`.
    var code: Int32 { self == .bf16 ? 0 : 1 }
}

extension GradientReducer {
    /// Without compression nothing is left over.
    public var residual: [Float]? { nil }
    public func restoreResidual(_ values: [Float]) {}
    /// By default the sum waits for the whole buffer.
    public var overlapsBackward: Bool { false }
    public func gradientsReady(_ gradients: Tensor, range: Range<Int>) {}
}

/// Picks the reducer for `accelerator`'s memory: direct on host memory,
/// staged through page-locked host memory for a device; with `compression`,
/// the sum travels as 16-bit floats with error feedback.
public func makeGradientReducer(communicator: any Communicator, accelerator: any Accelerator,
                                count: Int, compression: GradientCompression? = nil) -> any GradientReducer {
    if communicator.size == 1 { return LocalGradientReducer() }
    if let compression {
        return CompressedGradientReducer(communicator: communicator, accelerator: accelerator, count: count, format: compression)
    }
    if accelerator.isHostMemory { return HostGradientReducer(communicator: communicator) }
    return StagedGradientReducer(communicator: communicator, accelerator: accelerator, count: count)
}

/// A world of one: the gradients already are the sum.
public final class LocalGradientReducer: GradientReducer {
    public init() {}
    public var name: String { "none (one rank)" }
    public func sum(_ gradients: Tensor) {}
}

/// Gradients in host memory: one in-place allreduce.
public final class HostGradientReducer: GradientReducer {
    private let communicator: any Communicator

    public init(communicator: any Communicator) { self.communicator = communicator }

    public var name: String { "allreduce on host memory" }

    public func sum(_ gradients: Tensor) {
        communicator.allReduceSum(UnsafeMutableBufferPointer(start: gradients.hostPointer, count: gradients.count))
    }
}

/// Gradients in device memory: device → page-locked host buffer → allreduce
/// → device, one copy each way per step.
public final class StagedGradientReducer: GradientReducer {
    private let communicator: any Communicator
    private let accelerator: any Accelerator
    private let staging: HostBuffer

    public init(communicator: any Communicator, accelerator: any Accelerator, count: Int) {
        self.communicator = communicator
        self.accelerator = accelerator
        staging = accelerator.allocateHostBuffer(count)
    }

    public var name: String { "allreduce staged through page-locked host memory" }

    public func sum(_ gradients: Tensor) {
        let host = staging.prefix(gradients.count)
        // The upload from the previous step may still be reading the buffer.
        staging.waitUntilWritable()
        accelerator.copy(gradients, to: host)  // waits for backward to finish
        communicator.allReduceSum(host)
        accelerator.copy(staging, to: gradients)  // queued; the next op runs after it
    }
}

/// Gradients summed as 16-bit floats, with error feedback: each step the
/// rank adds what rounding lost last time (`residual`) to its gradients,
/// rounds the total to the format, keeps the new rounding error, and the
/// ranks sum the rounded values; the sum replaces the gradients. Half the
/// bytes of the Float32 allreduce cross the network, and no gradient is lost
/// to rounding for good, only delayed. Device gradients are staged through
/// host memory.
public final class CompressedGradientReducer: GradientReducer {
    private let communicator: any Communicator
    private let accelerator: any Accelerator
    private let format: GradientCompression
    private var error: [Float]
    private var halves: [UInt16]
    /// Device accelerators only: the gradients in host memory.
    private let staging: HostBuffer?

    public init(communicator: any Communicator, accelerator: any Accelerator, count: Int, format: GradientCompression) {
        self.communicator = communicator
        self.accelerator = accelerator
        self.format = format
        error = [Float](repeating: 0, count: count)
        halves = [UInt16](repeating: 0, count: count)
        staging = accelerator.isHostMemory ? nil : accelerator.allocateHostBuffer(count)
    }

    public var name: String { "allreduce of \(format.rawValue) with error feedback" }

    public var residual: [Float]? { error }

    public func restoreResidual(_ values: [Float]) {
        precondition(values.count == error.count, "residual of \(values.count) values for \(error.count) gradients")
        error = values
    }

    public func sum(_ gradients: Tensor) {
        let count = gradients.count
        precondition(count <= error.count, "more gradients than the reducer holds")
        let host: UnsafeMutablePointer<Float>
        if let staging {
            staging.waitUntilWritable()
            accelerator.copy(gradients, to: staging.prefix(count))
            host = staging.baseAddress
        } else {
            host = gradients.hostPointer
        }
        error.withUnsafeMutableBufferPointer { e in
            halves.withUnsafeMutableBufferPointer { q in
                nn_compress_half(host, e.baseAddress, q.baseAddress, count, format.code)
                communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: q[0..<count]), format: format)
                nn_expand_half(q.baseAddress, host, count, format.code)
            }
        }
        if let staging { accelerator.copy(staging, to: gradients) }
    }
}
