// Summing gradients while backward still runs. Backward finishes the layers
// last to first, so the end of the flat gradient buffer is final first. The
// buffer is cut at layer boundaries into buckets of at least `bucketBytes`,
// from the end; as soon as backward has passed a bucket's start, a thread of
// the reducer's own runs that bucket's allreduce (blocking, on the
// communicator, one at a time), and backward goes on with the layers below.
// `sum` hands over what is left and waits for all of them. Every rank runs
// the same buckets in the same order whatever its batch held (a rank with
// no samples in a step hands them all over in `sum`), so the collectives
// match, and each value is summed by one allreduce as in the fused path: the
// result differs from it only where the allreduce's own order of additions
// depends on the buffer's length.

import Foundation
import NNCore

/// Gradients in host memory, summed in buckets overlapped with backward.
public final class OverlappingGradientReducer: GradientReducer {
    /// The buckets, from the end of the buffer towards its start.
    public let buckets: [Range<Int>]
    private let worker: CollectiveThread
    /// Buckets handed to the worker this step.
    private var started = 0

    /// Buckets over `layerRanges` (the model's parameter ranges, in buffer
    /// order, together covering 0..<count), each at least `bucketBytes`
    /// except perhaps the one at the buffer's start.
    public init(communicator: any Communicator, layerRanges: [Range<Int>], bucketBytes: Int) {
        buckets = Self.plan(layerRanges: layerRanges, bucketValues: max(1, bucketBytes / MemoryLayout<Float>.stride))
        worker = CollectiveThread(communicator: communicator)
    }

    deinit { worker.stop() }

    public var name: String {
        "allreduce in \(buckets.count) bucket\(buckets.count == 1 ? "" : "s") overlapped with backward"
    }

    public var overlapsBackward: Bool { true }

    public func gradientsReady(_ gradients: Tensor, range: Range<Int>) {
        while started < buckets.count && range.lowerBound <= buckets[started].lowerBound {
            worker.submit(slice(gradients, buckets[started]))
            started += 1
        }
    }

    public func sum(_ gradients: Tensor) {
        while started < buckets.count {
            worker.submit(slice(gradients, buckets[started]))
            started += 1
        }
        worker.waitUntilIdle()
        started = 0
    }

    private func slice(_ gradients: Tensor, _ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: gradients.hostPointer + range.lowerBound, count: range.count)
    }

    /// Groups consecutive layers from the last one until a group holds at
    /// least `bucketValues` values; the groups, last first.
    public static func plan(layerRanges: [Range<Int>], bucketValues: Int) -> [Range<Int>] {
        var buckets: [Range<Int>] = []
        var upper: Int?
        for range in layerRanges.reversed() where !range.isEmpty {
            let top = upper ?? range.upperBound
            upper = top
            if top - range.lowerBound >= bucketValues {
                buckets.append(range.lowerBound..<top)
                upper = nil
            }
        }
        if let upper, let first = layerRanges.first(where: { !$0.isEmpty }) { buckets.append(first.lowerBound..<upper) }
        return buckets
    }
}

/// One thread that runs allreduces handed to it, in order.
final class CollectiveThread: @unchecked Sendable {
    private let communicator: any Communicator
    private let condition = NSCondition()
    private var queue: [UnsafeMutableBufferPointer<Float>] = []
    private var busy = false
    private var stopping = false

    init(communicator: any Communicator) {
        self.communicator = communicator
        // The thread holds the object until `stop` ends its loop.
        let thread = Thread { self.loop() }
        thread.name = "nntrain allreduce"
        thread.start()
    }

    /// Queues an in-place allreduce of `buffer`, which must stay valid until `waitUntilIdle` returns.
    func submit(_ buffer: UnsafeMutableBufferPointer<Float>) {
        condition.lock()
        queue.append(buffer)
        condition.signal()
        condition.unlock()
    }

    /// Returns when every queued allreduce has finished.
    func waitUntilIdle() {
        condition.lock()
        while !queue.isEmpty || busy { condition.wait() }
        condition.unlock()
    }

    /// Ends the thread once it is idle.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let buffer = queue.removeFirst()
            busy = true
            condition.unlock()
            communicator.allReduceSum(buffer)
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
