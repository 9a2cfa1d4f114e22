// A job of N ranks as N threads of one process, for tests.
//
// MPI needs a launcher and separate processes, so a test of what the trainer
// does across ranks costs seconds and a working Open MPI. Here every rank is a
// thread and every collective is a rendezvous in shared memory: no rank
// leaves a collective before every rank has entered it, the last rank to
// arrive does the whole collective on everyone's buffers while the others
// wait, and a generation counter keeps consecutive collectives apart. Tests of
// trainer behaviour then run in milliseconds, like SwiftNIO's EmbeddedChannel
// does for channel handlers.
//
// A real job dies as a whole when one rank fails; threads would instead wait
// forever for the failed rank. The world is therefore poisonable: the first
// failure releases every waiting rank, and `run` reports that failure.

import CKernels
import Foundation

/// The collectives of the `Communicator` protocol, as the in-process world
/// names them in its errors.
public enum Collective: String, Sendable, Equatable {
    /// `allReduceSum` of Float values (a different collective from the
    /// Double one, as MPI's datatypes would be).
    case allReduceSumFloat = "allReduceSum(Float)"
    /// `allReduceSum` of Double values.
    case allReduceSumDouble = "allReduceSum(Double)"
    /// `allReduceSum` of 16-bit floats.
    case allReduceSumHalf = "allReduceSum(UInt16)"
    /// `reduceScatterSum(_:parts:)`.
    case reduceScatterSum = "reduceScatterSum(Float)"
    /// `allGather(_:parts:)`.
    case allGatherParts = "allGather(Float, parts)"
    /// `broadcast(_:root:)`.
    case broadcast
    /// `allGather(_:)`.
    case allGather
    /// `barrier()`.
    case barrier
}

/// Ranks of an in-process world that did not call the same collectives.
///
/// Under MPI these bugs hang the job or corrupt memory; the in-process world
/// reports them as the error of `InProcessWorld.run` instead, so that a test
/// fails with a message rather than hanging.
public enum CollectiveMismatch: Error, Equatable, CustomStringConvertible {
    /// `rank` entered `entered` while other ranks were waiting in `waiting`.
    case differentCollectives(rank: Int, entered: Collective, waiting: Collective)
    /// `rank`'s body returned while other ranks were waiting in (or later
    /// entered) `collective`, which can therefore never complete.
    case rankReturned(rank: Int, collective: Collective)

    /// One line naming the ranks and collectives involved.
    public var description: String {
        switch self {
        case let .differentCollectives(rank, entered, waiting):
            return "rank \(rank) entered \(entered.rawValue) while other ranks wait in \(waiting.rawValue)"
        case let .rankReturned(rank, collective):
            return "rank \(rank) returned while other ranks wait in \(collective.rawValue)"
        }
    }
}

/// A deliberate error in an in-process world's allreduce.
///
/// A test that checks what the trainer does with summed gradients should fail
/// when the sum is wrong; a world built with a fault lets it show that.
/// `transform` sees every value of every rank (converted to Double) and
/// returns the value to use instead; `call` counts the world's allreduces
/// (Float and Double together) from 0.
public struct AllReduceFault: Sendable {
    /// Where in the allreduce the fault strikes.
    public enum Stage: Sendable {
        /// A rank's contribution before it is added: the sum is wrong but
        /// still identical on every rank.
        case contribution
        /// The sum as one rank receives it: ranks end with different values.
        case result
    }

    /// Where `transform` applies.
    public let stage: Stage
    /// Maps (allreduce number, rank, value) to the value used instead.
    public let transform: @Sendable (_ call: Int, _ rank: Int, _ value: Double) -> Double

    /// A fault that replaces values at `stage` by `transform`'s.
    public init(stage: Stage, transform: @escaping @Sendable (_ call: Int, _ rank: Int, _ value: Double) -> Double) {
        self.stage = stage
        self.transform = transform
    }

    /// Leaves `rank`'s contribution out of every sum, as a lost message would.
    public static func dropContribution(ofRank rank: Int) -> AllReduceFault {
        AllReduceFault(stage: .contribution) { _, r, value in r == rank ? 0 : value }
    }

    /// Adds `delta` to every sum `rank` receives, so that `rank` disagrees with the others.
    public static func perturbResult(ofRank rank: Int, by delta: Double) -> AllReduceFault {
        AllReduceFault(stage: .result) { _, r, value in r == rank ? value + delta : value }
    }
}

/// N ranks in one process: the shared state behind N `ThreadCommunicator`s.
///
/// Collectives follow MPI's semantics, and each is a rendezvous of all ranks:
///
/// - `allReduceSum` adds in rank order, `((x₀ + x₁) + x₂) + … + x_{N−1}`,
///   in the buffer's own type, and writes the one result to every rank, so
///   sums are deterministic and bitwise identical on all ranks.
/// - `broadcast` copies root's bytes to every rank.
/// - `allGather` returns every rank's value, indexed by rank.
/// - `barrier` returns on no rank before every rank has entered it.
///
/// Disagreeing arguments within one collective (buffer lengths, roots) are
/// programming errors and stop the process with a precondition failure.
/// Ranks that call different collectives, or a rank that returns while the
/// others wait, fail the world with a `CollectiveMismatch`.
///
/// A failed world stays failed. Every collective that is waiting when the
/// world fails, or that is entered afterwards, returns at once without
/// communicating: buffers are left as they were, and `allGather` returns the
/// caller's own value at its own rank and 0 elsewhere. `run` then throws.
///
/// Thread safety: all mutable state is guarded by `condition`'s lock. While a
/// rank waits in a collective, the world holds raw pointers to that rank's
/// buffers; the rank cannot return (and so cannot free them) before the
/// collective completes or the world fails, and after a failure the world
/// never touches them again.
public final class InProcessWorld: @unchecked Sendable {
    /// One rank's part in the collective under way: what it called and where
    /// its data lie.
    private enum Arrival {
        case floats(UnsafeMutableBufferPointer<Float>)
        case doubles(UnsafeMutableBufferPointer<Double>)
        case halves(UnsafeMutableBufferPointer<UInt16>, GradientCompression)
        case bytes(UnsafeMutableRawBufferPointer, root: Int)
        case gather(UInt64, into: UnsafeMutableBufferPointer<UInt64>)
        case scatterSum(UnsafeMutableBufferPointer<Float>, parts: [Range<Int>])
        case gatherParts(UnsafeMutableBufferPointer<Float>, parts: [Range<Int>])
        case barrier

        var collective: Collective {
            switch self {
            case .floats: return .allReduceSumFloat
            case .doubles: return .allReduceSumDouble
            case .halves: return .allReduceSumHalf
            case .bytes: return .broadcast
            case .gather: return .allGather
            case .scatterSum: return .reduceScatterSum
            case .gatherParts: return .allGatherParts
            case .barrier: return .barrier
            }
        }
    }

    /// Number of ranks.
    public let size: Int
    private let fault: AllReduceFault?

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var arrivals: [Arrival?]
    private var arrivedCount = 0
    /// Advances each time a collective completes; a waiting rank leaves when it changes.
    private var generation: UInt64 = 0
    private var allReduceCalls = 0
    /// The first failure: a rank's error or a `CollectiveMismatch`.
    private var failure: (any Error)?
    /// Ranks whose collective returned early because the world had failed;
    /// their errors, if any, are consequences of the failure.
    private var released: [Bool]
    /// Ranks whose body has returned in the current `run`.
    private var returned: [Bool]
    private var running = false

    /// A world of `ranks` ranks, with `fault` (for tests of tests) in its allreduce.
    public init(ranks: Int, fault: AllReduceFault? = nil) {
        precondition(ranks >= 1, "an in-process world needs at least one rank")
        size = ranks
        self.fault = fault
        arrivals = Array(repeating: nil, count: ranks)
        released = Array(repeating: false, count: ranks)
        returned = Array(repeating: false, count: ranks)
    }

    /// Whether the world has failed (collectives no longer communicate).
    public var hasFailed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return failure != nil
    }

    /// Runs `body` once per rank, each on its own thread, and returns the
    /// results in rank order.
    ///
    /// Every rank gets a thread of its own (not a pool that might run bodies
    /// one after another, which would deadlock in the first collective).
    /// When a body throws, the world fails, waiting ranks are released, and
    /// `run` throws after every thread has finished: the lowest-ranked error
    /// among ranks that were not released early, else the world's
    /// `CollectiveMismatch`. Errors of released ranks are consequences and are
    /// not reported.
    ///
    /// `body` is escaping because Foundation's `Thread` still holds its block
    /// after the body has finished (there is no join); `run` itself returns
    /// only after every body has.
    public func run<T>(_ body: @escaping @Sendable (ThreadCommunicator) throws -> T) throws -> [T] {
        condition.lock()
        precondition(!running, "InProcessWorld.run is already running")
        running = true
        returned = Array(repeating: false, count: size)
        condition.unlock()
        defer {
            condition.lock()
            running = false
            condition.unlock()
        }

        let outcomes = Outcomes<T>(count: size)
        let finished = DispatchGroup()
        for rank in 0..<size {
            let communicator = ThreadCommunicator(world: self, rank: rank)
            finished.enter()
            let thread = Thread {
                let outcome = Result { try body(communicator) }
                if case let .failure(error) = outcome { self.fail(error) } else { self.rankReturned(rank) }
                outcomes.set(rank, outcome)
                finished.leave()
            }
            // Secondary threads get 512 KiB on macOS; give bodies the main thread's usual 8 MiB.
            thread.stackSize = 8 << 20
            thread.start()
        }
        finished.wait()

        condition.lock()
        let failure = self.failure
        let released = self.released
        condition.unlock()
        let results = outcomes.all()
        guard let failure else {
            return results.map { try! $0.get() }  // without a failure, no body threw
        }
        for (rank, result) in results.enumerated() where !released[rank] {
            if case let .failure(error) = result { throw error }
        }
        throw failure
    }

    // MARK: - The rendezvous

    /// Enters the collective `arrival` for `rank` and waits for it to
    /// complete. Returns false when the world failed first (nothing was
    /// communicated).
    private func rendezvous(_ rank: Int, _ arrival: Arrival) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if failure == nil, let waiting = arrivals.lazy.compactMap({ $0 }).first,
           waiting.collective != arrival.collective {
            failLocked(CollectiveMismatch.differentCollectives(rank: rank, entered: arrival.collective,
                                                               waiting: waiting.collective))
        }
        if failure == nil, let gone = returned.firstIndex(of: true) {
            failLocked(CollectiveMismatch.rankReturned(rank: gone, collective: arrival.collective))
        }
        if failure != nil {
            released[rank] = true
            return false
        }

        arrivals[rank] = arrival
        arrivedCount += 1
        if arrivedCount == size {
            perform(arrivals.map { $0! })
            arrivals = Array(repeating: nil, count: size)
            arrivedCount = 0
            generation &+= 1
            condition.broadcast()
            return true
        }
        let mine = generation
        while generation == mine && failure == nil { condition.wait() }
        if generation != mine { return true }  // completed before the failure
        arrivals[rank] = nil  // never to be read: the world has failed
        arrivedCount -= 1
        released[rank] = true
        return false
    }

    /// Does the whole collective on every rank's buffers. Called by the last
    /// rank to arrive, with the lock held and every other rank waiting.
    /// `rendezvous` admits only arrivals of one kind, so the `fatalError`s
    /// below cannot be reached.
    private func perform(_ all: [Arrival]) {
        switch all[0].collective {
        case .allReduceSumFloat:
            reduce(all.map { if case let .floats(b) = $0 { return b } else { fatalError("mixed arrivals") } })
        case .allReduceSumDouble:
            reduce(all.map { if case let .doubles(b) = $0 { return b } else { fatalError("mixed arrivals") } })
        case .allReduceSumHalf:
            let parts = all.map { arrival -> (UnsafeMutableBufferPointer<UInt16>, GradientCompression) in
                if case let .halves(b, format) = arrival { return (b, format) } else { fatalError("mixed arrivals") }
            }
            reduce(parts.map(\.0), format: parts[0].1)
        case .broadcast:
            let parts = all.map { arrival -> (UnsafeMutableRawBufferPointer, Int) in
                if case let .bytes(b, root) = arrival { return (b, root) } else { fatalError("mixed arrivals") }
            }
            let root = parts[0].1
            let source = parts[root].0
            for (rank, (buffer, theirRoot)) in parts.enumerated() {
                precondition(theirRoot == root, "broadcast: rank \(rank) names root \(theirRoot), rank 0 root \(parts[0].1)")
                precondition(buffer.count == source.count,
                             "broadcast: rank \(rank) passed \(buffer.count) bytes, root \(root) \(source.count)")
                if rank != root && buffer.count > 0 { buffer.copyMemory(from: UnsafeRawBufferPointer(source)) }
            }
        case .allGather:
            let parts = all.map { arrival -> (UInt64, UnsafeMutableBufferPointer<UInt64>) in
                if case let .gather(value, into) = arrival { return (value, into) } else { fatalError("mixed arrivals") }
            }
            for (_, output) in parts {
                for (rank, (value, _)) in parts.enumerated() { output[rank] = value }
            }
        case .reduceScatterSum, .allGatherParts:
            let parts = all.map { arrival -> (UnsafeMutableBufferPointer<Float>, [Range<Int>]) in
                switch arrival {
                case let .scatterSum(b, parts), let .gatherParts(b, parts): return (b, parts)
                default: fatalError("mixed arrivals")
                }
            }
            exchangeParts(parts.map(\.0), parts: parts[0].1, summing: all[0].collective == .reduceScatterSum)
        case .barrier:
            break
        }
    }

    /// Reduce-scatter (`summing`: rank r's part of its buffer becomes the
    /// sum, in rank order, of every rank's values there) or all-gather
    /// (rank r's part is copied to every other buffer).
    private func exchangeParts(_ buffers: [UnsafeMutableBufferPointer<Float>], parts: [Range<Int>], summing: Bool) {
        let count = buffers[0].count
        precondition(parts.count == size && parts.first?.lowerBound == 0 && parts.last?.upperBound == count
                     && zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound },
                     "parts must cut the \(count) values into \(size) consecutive ranges")
        for (rank, buffer) in buffers.enumerated() {
            precondition(buffer.count == count, "rank \(rank) passed \(buffer.count) values, rank 0 \(count)")
        }
        for (owner, part) in parts.enumerated() {
            for i in part {
                if summing {
                    var sum = buffers[0][i]
                    for rank in 1..<size { sum += buffers[rank][i] }
                    buffers[owner][i] = sum
                } else {
                    for rank in 0..<size where rank != owner { buffers[rank][i] = buffers[owner][i] }
                }
            }
        }
    }

    /// 16-bit floats: adds in rank order, rounding each partial sum back to
    /// the format as a pairwise reduction of MPI's does.
    private func reduce(_ buffers: [UnsafeMutableBufferPointer<UInt16>], format: GradientCompression) {
        let count = buffers[0].count
        for (rank, buffer) in buffers.enumerated() {
            precondition(buffer.count == count, "allReduceSum: rank \(rank) passed \(buffer.count) values, rank 0 \(count)")
        }
        allReduceCalls += 1
        guard count > 0 else { return }
        var sum = Array(buffers[0])
        sum.withUnsafeMutableBufferPointer { total in
            for rank in 1..<size { nn_sum_half(buffers[rank].baseAddress, total.baseAddress, count, format.code) }
        }
        for buffer in buffers { _ = buffer.update(from: sum) }
    }

    /// Adds the buffers element by element in rank order and writes the sum
    /// back to all of them; each element is read on every rank before it is
    /// overwritten, so no scratch copy is needed.
    private func reduce<F: BinaryFloatingPoint>(_ buffers: [UnsafeMutableBufferPointer<F>]) {
        let count = buffers[0].count
        for (rank, buffer) in buffers.enumerated() {
            precondition(buffer.count == count, "allReduceSum: rank \(rank) passed \(buffer.count) values, rank 0 \(count)")
        }
        let call = allReduceCalls
        allReduceCalls += 1
        guard let fault else {
            for i in 0..<count {
                var sum = buffers[0][i]
                for rank in 1..<size { sum += buffers[rank][i] }
                for rank in 0..<size { buffers[rank][i] = sum }
            }
            return
        }
        func contribution(_ rank: Int, _ value: F) -> F {
            fault.stage == .contribution ? F(fault.transform(call, rank, Double(value))) : value
        }
        for i in 0..<count {
            var sum = contribution(0, buffers[0][i])
            for rank in 1..<size { sum += contribution(rank, buffers[rank][i]) }
            for rank in 0..<size {
                buffers[rank][i] = fault.stage == .result ? F(fault.transform(call, rank, Double(sum))) : sum
            }
        }
    }

    // MARK: - Failure

    /// Fails the world with `error` unless it failed already.
    private func fail(_ error: any Error) {
        condition.lock()
        failLocked(error)
        condition.unlock()
    }

    private func failLocked(_ error: any Error) {
        if failure == nil { failure = error }
        condition.broadcast()  // wake every waiting rank to leave
    }

    /// Records that `rank`'s body returned; ranks waiting for it now never complete.
    private func rankReturned(_ rank: Int) {
        condition.lock()
        defer { condition.unlock() }
        returned[rank] = true
        if failure == nil, let waiting = arrivals.lazy.compactMap({ $0 }).first {
            failLocked(CollectiveMismatch.rankReturned(rank: rank, collective: waiting.collective))
        }
    }

    // MARK: - Entry points for ThreadCommunicator

    fileprivate func allReduceSum(_ rank: Int, _ buffer: UnsafeMutableBufferPointer<Float>) {
        _ = rendezvous(rank, .floats(buffer))
    }

    fileprivate func allReduceSum(_ rank: Int, _ buffer: UnsafeMutableBufferPointer<Double>) {
        _ = rendezvous(rank, .doubles(buffer))
    }

    fileprivate func allReduceSum(_ rank: Int, _ buffer: UnsafeMutableBufferPointer<UInt16>, format: GradientCompression) {
        _ = rendezvous(rank, .halves(buffer, format))
    }

    fileprivate func reduceScatterSum(_ rank: Int, _ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {
        _ = rendezvous(rank, .scatterSum(buffer, parts: parts))
    }

    fileprivate func allGather(_ rank: Int, _ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {
        _ = rendezvous(rank, .gatherParts(buffer, parts: parts))
    }

    fileprivate func broadcast(_ rank: Int, _ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        precondition((0..<size).contains(root), "broadcast: root \(root) outside 0..<\(size)")
        _ = rendezvous(rank, .bytes(buffer, root: root))
    }

    fileprivate func allGather(_ rank: Int, _ value: UInt64) -> [UInt64] {
        var all = [UInt64](repeating: 0, count: size)
        let completed = all.withUnsafeMutableBufferPointer { rendezvous(rank, .gather(value, into: $0)) }
        if !completed { all[rank] = value }  // a released rank knows only its own value
        return all
    }

    fileprivate func barrier(_ rank: Int) {
        _ = rendezvous(rank, .barrier)
    }
}

/// Each rank's outcome in `InProcessWorld.run`: written once by the rank's
/// thread, read after every thread has finished. The lock makes the writes
/// of different threads to one array safe; the value of `T` crosses threads
/// only after its thread is done with it.
private final class Outcomes<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<T, any Error>?]

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func set(_ rank: Int, _ result: Result<T, any Error>) {
        lock.lock()
        results[rank] = result
        lock.unlock()
    }

    func all() -> [Result<T, any Error>] {
        lock.lock()
        defer { lock.unlock() }
        return results.map { $0! }
    }
}

/// One rank of an `InProcessWorld`, used by that rank's thread only.
///
/// `localRank` and `localSize` equal `rank` and `size`: all ranks share one host.
public final class ThreadCommunicator: Communicator, Sendable {
    /// The world this rank belongs to.
    public let world: InProcessWorld
    /// This rank's index, 0..<size.
    public let rank: Int

    fileprivate init(world: InProcessWorld, rank: Int) {
        self.world = world
        self.rank = rank
    }

    /// Runs `body` on `ranks` threads of a new world and returns the results
    /// in rank order; see `InProcessWorld.run` for failures.
    public static func run<T>(ranks: Int, fault: AllReduceFault? = nil,
                              _ body: @escaping @Sendable (ThreadCommunicator) throws -> T) throws -> [T] {
        try InProcessWorld(ranks: ranks, fault: fault).run(body)
    }

    /// Number of ranks in the world.
    public var size: Int { world.size }
    /// A rank's collectives may come from any thread, one at a time.
    public var collectivesFromAnyThread: Bool { true }
    /// Equals `rank`: every rank is on this host.
    public var localRank: Int { rank }
    /// Equals `size`: every rank is on this host.
    public var localSize: Int { world.size }
    /// `in-process, N ranks`.
    public var name: String { "in-process, \(size) rank\(size == 1 ? "" : "s")" }

    /// Sums in rank order into every rank's buffer; see `InProcessWorld`.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) { world.allReduceSum(rank, buffer) }
    /// Sums in rank order into every rank's buffer; see `InProcessWorld`.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) { world.allReduceSum(rank, buffer) }
    /// Sums in rank order, each partial sum rounded to `format`; see `InProcessWorld`.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<UInt16>, format: GradientCompression) {
        world.allReduceSum(rank, buffer, format: format)
    }
    /// Copies root's bytes to every rank; every rank must pass the same length.
    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {
        world.reduceScatterSum(rank, buffer, parts: parts)
    }

    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {
        world.allGather(rank, buffer, parts: parts)
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) { world.broadcast(rank, buffer, root: root) }
    /// Every rank's `value`, indexed by rank.
    public func allGather(_ value: UInt64) -> [UInt64] { world.allGather(rank, value) }
    /// Returns once every rank has entered the barrier.
    public func barrier() { world.barrier(rank) }
    /// Not meaningful for threads: a rank should throw from its body instead.
    /// Nothing to leave: the world ends with `run`.
    public func finalize() {}
}
