// Collective communication between the ranks of a data-parallel job. MPI
// appears in this module only; everything else talks to `Communicator`.

import NNCore

/// The collectives a data-parallel trainer needs, over host memory.
public protocol Communicator: AnyObject {
    /// This process's index, 0..<size. Rank 0 is the coordinator.
    var rank: Int { get }
    /// Number of processes in the job.
    var size: Int { get }
    /// Index among the processes on this host.
    var localRank: Int { get }
    /// Number of processes on this host.
    var localSize: Int { get }
    /// A short description, e.g. `MPI (Open MPI v4.1.4), 4 ranks`.
    var name: String { get }

    /// Sums `buffer` element-wise across all ranks, in place, on every rank.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// Sums `buffer` element-wise across all ranks (Double, for metrics).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>)
    /// Sums 16-bit floats of `format` element-wise across all ranks, in
    /// place: each addition of two ranks' values is rounded back to the
    /// format, and every rank ends with the same values.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<UInt16>, format: GradientCompression)
    /// Sums `buffer` element-wise across all ranks, but only rank r's
    /// `parts[r]` of the sum lands, in place, on rank r; the rest of the
    /// buffer is left unspecified. `parts` cut the buffer into consecutive
    /// ranges, one per rank in rank order (some may be empty), the same on
    /// every rank. Half of an allreduce: `allGather(_:parts:)` is the other.
    func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>])
    /// Copies each rank's `parts[rank]` of `buffer` to the same place on
    /// every other rank (`parts` as for `reduceScatterSum`).
    func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>])
    /// Copies `buffer` from `root` to every other rank.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int)
    /// Every rank's `value`, indexed by rank.
    func allGather(_ value: UInt64) -> [UInt64]
    /// Waits until every rank arrives.
    func barrier()
    /// The training step this rank works on now, for messages about a stall
    /// (a communicator without a watchdog ignores it).
    func markProgress(step: Int)
    /// Times every allreduce algorithm on `count` floats and uses the
    /// fastest for every later Float `allReduceSum` (collective: every rank
    /// calls it with the same count, before the first step). Nil where there
    /// is no algorithm to choose.
    func tuneAllreduce(count: Int) -> AllreduceTuningResult?
    /// Uses allreduce algorithm `number` (see `AllreduceTuning.algorithms`)
    /// for every later Float `allReduceSum`, unmeasured (collective). Nil
    /// where there is no algorithm to choose.
    func useAllreduceAlgorithm(_ number: Int) -> AllreduceTuningResult?
    /// Whether a thread other than the one that made the communicator may
    /// run its collectives, one thread at a time (MPI_THREAD_SERIALIZED or
    /// more): what an allreduce overlapped with backward needs.
    var collectivesFromAnyThread: Bool { get }
    /// Memory for `count` floats of this rank that the other ranks can read
    /// directly, for the gradients: Float sums of a buffer there may then
    /// run through it (`tuneAllreduce` times that way too). Collective:
    /// every rank calls it, and memory is shared only when every rank
    /// `wanted` it and all share one host. Nil otherwise (one rank, ranks on
    /// several hosts or threads of one process, a failed allocation). The
    /// memory belongs to the communicator and stays valid until `finalize`,
    /// after which nothing may touch the storage.
    func allocateShared(count: Int, wanted: Bool) -> DeviceStorage?
    /// Leaves the job cleanly.
    func finalize()
}

extension Communicator {
    public func markProgress(step: Int) {}

    /// By default collectives belong to the thread that made the communicator.
    public var collectivesFromAnyThread: Bool { false }

    /// A world of one, or ranks as threads: one way to sum, nothing to choose.
    public func tuneAllreduce(count: Int) -> AllreduceTuningResult? { nil }

    /// A world of one, or ranks as threads: nothing to share.
    public func allocateShared(count: Int, wanted: Bool) -> DeviceStorage? { nil }

    /// A world of one, or ranks as threads: one way to sum, nothing to choose.
    public func useAllreduceAlgorithm(_ number: Int) -> AllreduceTuningResult? { nil }

    /// Whether this rank is the coordinator (rank 0).
    public var isCoordinator: Bool { rank == 0 }

    /// Broadcasts one Float array (same length on every rank) from `root`.
    public func broadcast(_ values: inout [Float], root: Int = 0) {
        values.withUnsafeMutableBytes { broadcast($0, root: root) }
    }

    /// Broadcasts a byte string from `root`; other ranks receive it whatever they passed.
    public func broadcast(bytes: [UInt8], root: Int = 0) -> [UInt8] {
        var length = UInt64(bytes.count)
        withUnsafeMutableBytes(of: &length) { broadcast($0, root: root) }
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        if length > 0 { result.withUnsafeMutableBytes { broadcast($0, root: root) } }
        return result
    }
}

/// A world of one: every collective is a no-op. Used when `nntrain` runs
/// without a launcher, so a laptop needs no MPI daemon and no extra flags.
public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public var name: String { "single process" }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<UInt16>, format: GradientCompression) {}
    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {}
    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
    public func allGather(_ value: UInt64) -> [UInt64] { [value] }
    public func barrier() {}
    public func finalize() {}
}

/// `count` values cut into `ranks` consecutive parts of equal size, rounded
/// up to `alignment` values (16 floats: 64 bytes, so each part starts on a
/// cache line of its own); the last parts take what is left, some possibly
/// nothing. How the sharded update and the shared-memory sum divide a buffer.
public func consecutiveParts(count: Int, ranks: Int, alignment: Int = 16) -> [Range<Int>] {
    precondition(ranks > 0 && count >= 0 && alignment > 0)
    let share = (count + ranks - 1) / ranks
    let size = (share + alignment - 1) / alignment * alignment
    return (0..<ranks).map { rank in
        let start = min(rank * size, count)
        return start..<min(start + size, count)
    }
}
