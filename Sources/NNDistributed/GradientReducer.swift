// How the flat gradient buffer is summed across ranks, wherever it lives.
//
// The trainer calls `sum(_:)` once per step and knows nothing else. Host
// memory goes straight to the communicator; device memory is staged through
// one page-locked host buffer. A device-native collective (NCCL, which reads
// GPU memory itself) would be one more conformer here, chosen by
// `makeGradientReducer`, with the trainer unchanged.

import NNCore

/// Sums one flat buffer of gradients over every rank of a job, in place.
public protocol GradientReducer: AnyObject {
    /// How the sum travels, e.g. `allreduce on host memory`.
    var name: String { get }
    /// Replaces `gradients` with its element-wise sum over all ranks
    /// (identical on every rank afterwards).
    func sum(_ gradients: Tensor)
}

/// Picks the reducer for `accelerator`'s memory: direct on host memory,
/// staged through page-locked host memory for a device.
public func makeGradientReducer(communicator: any Communicator, accelerator: any Accelerator,
                                count: Int) -> any GradientReducer {
    if communicator.size == 1 { return LocalGradientReducer() }
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
