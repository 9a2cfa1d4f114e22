// The Open MPI implementation of `Communicator`.

import CKernels
import CMPI
import NNCore
#if canImport(Glibc)
import Glibc
#endif

/// Collectives over `MPI_COMM_WORLD`, or some of its ranks (`subset`),
/// watched by a `Watchdog` when one is asked for.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    /// Every rank's host name (MPI's processor name), by rank.
    public let hostNames: [String]
    /// Every rank's node, by rank: the lowest world rank it shares memory
    /// with (`MPI_COMM_TYPE_SHARED`), so ranks of one node have the same number.
    public let nodes: [Int]
    /// The thread support MPI_Init_thread provided.
    private let threadLevel: Int32
    /// MPI_THREAD_SERIALIZED or more: another thread may run collectives in turn.
    public var collectivesFromAnyThread: Bool { threadLevel >= nn_mpi_thread_serialized() }
    /// Why there is no watchdog though one was asked for (nil: none asked, or it runs).
    public private(set) var watchdogProblem: String?
    /// The communicator the collectives run on.
    let comm: MPI_Comm
    /// Each rank's number in `MPI_COMM_WORLD` (the identity for the world itself).
    public let worldRanks: [Int]
    /// The number of ranks in `MPI_COMM_WORLD`.
    private let worldSize: Int
    private var watchdog: Watchdog?
    private let watchdogSettings: WatchdogSettings?
    /// Communicators made from this one (`subset`), released at `finalize`.
    private var subsets: [MPICommunicator] = []
    /// Where Float allreduces (the gradients) run: `comm`, or a duplicate
    /// of it that carries the chosen algorithm.
    private var gradientComm: MPI_Comm
    /// Duplicates this communicator made and frees at `finalize`.
    private var duplicates: [MPI_Comm] = []
    /// Whether the MPI tool interface (control variables) is initialized.
    private var toolsStarted = false
    /// How the sum allreduces wait for the other ranks (see `CollectiveWait`);
    /// every rank must use the same.
    public var wait: CollectiveWait
    /// Memory shared by the ranks of one host (`allocateShared`): the
    /// gradients', and the parameters' for the sharded update.
    var shared: [SharedWindow] = []
    /// Whether Float sums of buffers in `shared` go through it rather than
    /// through MPI's collectives (chosen by `tuneAllreduce`).
    var sumsThroughShared = false

    /// Initializes MPI (once per process). Open MPI reads its settings, such
    /// as the allreduce algorithm, from the environment at this point. With
    /// `watchdog` settings every collective is watched (see `Watchdog`); that
    /// needs MPI_THREAD_MULTIPLE, and collectives then report errors to the
    /// watchdog instead of aborting inside MPI. `wait` is how the sum
    /// allreduces wait for the other ranks (see `CollectiveWait`).
    public convenience init(watchdog settings: WatchdogSettings? = nil, wait: CollectiveWait = .blocking) {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, settings == nil ? 0 : nn_mpi_thread_multiple(), &provided)
        let world: MPI_Comm = nn_mpi_comm_world()!
        var size: Int32 = 0
        MPI_Comm_size(world, &size)
        self.init(comm: world, threadLevel: provided, wait: wait, watchdog: settings, worldRanks: Array(0..<Int(size)),
                  hostNames: Self.gatherProcessorNames(world, size: Int(size)), nodes: Self.gatherNodes(world, size: Int(size)))
    }

    /// Collectives over `comm`, whose ranks are the world's `worldRanks` on
    /// hosts `hostNames` and nodes `nodes`, watched with `settings` when given.
    private init(comm: MPI_Comm, threadLevel: Int32, wait: CollectiveWait, watchdog settings: WatchdogSettings?,
                 worldRanks: [Int], hostNames: [String], nodes: [Int]) {
        self.wait = wait
        self.threadLevel = threadLevel
        self.comm = comm
        self.worldRanks = worldRanks
        self.hostNames = hostNames
        self.nodes = nodes
        self.watchdogSettings = settings
        gradientComm = comm
        var value: Int32 = 0
        MPI_Comm_size(nn_mpi_comm_world(), &value)
        worldSize = Int(value)
        MPI_Comm_rank(comm, &value)
        let rank = Int(value)
        self.rank = rank
        size = nodes.count
        // The ranks of this node, in rank order.
        let here = nodes.indices.filter { nodes[$0] == nodes[rank] }
        localRank = here.firstIndex(of: rank)!
        localSize = here.count
        guard let settings, size > 1 else { return }
        guard threadLevel >= nn_mpi_thread_multiple() else {
            watchdogProblem = "this MPI library lacks MPI_THREAD_MULTIPLE, so stalled collectives are not watched"
            return
        }
        let watchdog = Watchdog(settings: settings, watched: comm, rank: rank, size: size, hosts: hostNames, worldRanks: worldRanks)
        MPI_Comm_set_errhandler(comm, nn_mpi_errors_return_handler())
        watchdog.start()
        self.watchdog = watchdog
    }

    public var name: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let version = String(cString: buffer).split(separator: ",").first.map(String.init) ?? "MPI"
        let ranks = "\(size) rank\(size == 1 ? "" : "s")"
        return "\(version), " + (worldSize == size ? ranks : "\(ranks) of \(worldSize)")
    }

    public func markProgress(step: Int) { watchdog?.note(step: step) }

    /// Runs one MPI collective under the watchdog.
    func watched(_ kind: CollectiveKind, _ call: () -> Int32) {
        guard let watchdog else {
            _ = call()
            return
        }
        watchdog.enter(kind)
        let code = call()
        watchdog.leave()
        if code != nn_mpi_success() { watchdog.failed(kind, code: code) }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        if sumsThroughShared, let (window, offset) = sharedWindow(holding: buffer) {
            sharedSum(window, offset: offset, count: buffer.count, parts: nil)
            return
        }
        watched(.allreduce) {
            reduce { MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_float(), nn_mpi_sum(), gradientComm) }
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        watched(.allreduce) {
            reduce { MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_double(), nn_mpi_sum(), comm) }
        }
    }

    /// Counts and offsets of `parts`, as MPI's vector collectives take them.
    private static func countsAndOffsets(_ parts: [Range<Int>]) -> (counts: [Int32], offsets: [Int32]) {
        (parts.map { Int32($0.count) }, parts.map { Int32($0.lowerBound) })
    }

    /// The reduce-scatter's landing place for this rank's part (MPI's
    /// receive buffer may not overlap its send buffer).
    private var scatterScratch: [Float] = []

    public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {
        guard size > 1, let base = buffer.baseAddress else { return }
        precondition(parts.count == size, "reduceScatterSum: \(parts.count) parts for \(size) ranks")
        if sumsThroughShared, let (window, offset) = sharedWindow(holding: buffer) {
            sharedSum(window, offset: offset, count: buffer.count, parts: parts)
            return
        }
        let mine = parts[rank]
        let (counts, _) = Self.countsAndOffsets(parts)
        if scatterScratch.count < max(mine.count, 1) { scatterScratch = [Float](repeating: 0, count: max(mine.count, 1)) }
        scatterScratch.withUnsafeMutableBufferPointer { scratch in
            watched(.reduceScatter) {
                reduce { MPI_Reduce_scatter(base, scratch.baseAddress, counts, nn_mpi_float(), nn_mpi_sum(), comm) }
            }
            if !mine.isEmpty {
                (base + mine.lowerBound).update(from: scratch.baseAddress!, count: mine.count)
            }
        }
    }

    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) {
        guard size > 1, let base = buffer.baseAddress else { return }
        precondition(parts.count == size, "allGather: \(parts.count) parts for \(size) ranks")
        if sumsThroughShared, let (window, offset) = sharedWindow(holding: buffer) {
            sharedGather(window, offset: offset, parts: parts)
            return
        }
        let (counts, offsets) = Self.countsAndOffsets(parts)
        watched(.allgather) {
            reduce { MPI_Allgatherv(nn_mpi_in_place(), 0, nn_mpi_float(), base, counts, offsets, nn_mpi_float(), comm) }
        }
    }

    /// Runs the blocking allreduce `blocking` as `wait` asks: as it is, or
    /// after the ranks meet in a barrier that waits yielding (the allreduce
    /// itself, and so its sums, stay the blocking one's).
    private func reduce(_ blocking: () -> Int32) -> Int32 {
        switch wait {
        case .blocking:
            return blocking()
        case .yielding(let backoff):
            let waited = yieldingBarrier(backoff)
            return waited == nn_mpi_success() ? blocking() : waited
        }
    }

    /// The ranks meet in an `MPI_Ibarrier` tested as `backoff` asks; the first error code.
    func yieldingBarrier(_ backoff: CollectiveWait.Backoff) -> Int32 {
        var request: MPI_Request? = nn_mpi_request_null()
        let code = MPI_Ibarrier(comm, &request)
        return code == nn_mpi_success() ? waitYielding(&request, backoff) : code
    }

    /// Starts the MPI tool interface once; whether it runs.
    func startTools() -> Bool {
        if !toolsStarted {
            var provided: Int32 = 0
            toolsStarted = MPI_T_init_thread(nn_mpi_thread_single(), &provided) == nn_mpi_success()
        }
        return toolsStarted
    }

    /// Tests `request` until it completes, sleeping between tests (or
    /// yielding the core when the backoff's first pause is zero); returns
    /// the first error code.
    private func waitYielding(_ request: inout MPI_Request?, _ backoff: CollectiveWait.Backoff) -> Int32 {
        var done: Int32 = 0
        var pause = backoff.first
        while true {
            let code = MPI_Test(&request, &done, nn_mpi_status_ignore())
            if code != nn_mpi_success() || done != 0 { return code }
            if pause <= 0 {
                sched_yield()
                continue
            }
            var time = timespec(tv_sec: 0, tv_nsec: pause * 1000)
            nanosleep(&time, nil)
            pause = min(backoff.longest, pause * 2)
        }
    }

    /// The reduction of 16-bit floats, one per format, made on first use.
    private var halfSums: [GradientCompression: MPI_Op] = [:]

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<UInt16>, format: GradientCompression) {
        guard size > 1, let base = buffer.baseAddress else { return }
        let op = halfSum(format)
        watched(.allreduce) { MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_uint16(), op, comm) }
    }

    /// `MPI_Op_create` of `nn_sum_half` for `format` (commutative).
    private func halfSum(_ format: GradientCompression) -> MPI_Op {
        if let op = halfSums[format] { return op }
        var op: MPI_Op? = nil
        switch format {
        case .bf16:
            MPI_Op_create({ input, output, count, _ in
                nn_sum_half(input?.assumingMemoryBound(to: UInt16.self), output?.assumingMemoryBound(to: UInt16.self),
                            Int(count?.pointee ?? 0), 0)
            }, 1, &op)
        case .fp16:
            MPI_Op_create({ input, output, count, _ in
                nn_sum_half(input?.assumingMemoryBound(to: UInt16.self), output?.assumingMemoryBound(to: UInt16.self),
                            Int(count?.pointee ?? 0), 1)
            }, 1, &op)
        }
        halfSums[format] = op!
        return op!
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        guard size > 1, let base = buffer.baseAddress, buffer.count > 0 else { return }
        // Counts are Int32: send large buffers in pieces.
        let chunk = 1 << 30
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            watched(.broadcast) { MPI_Bcast(base + offset, Int32(n), nn_mpi_byte(), Int32(root), comm) }
            offset += n
        }
    }

    public func allGather(_ value: UInt64) -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        watched(.allgather) { MPI_Allgather(&mine, 1, nn_mpi_uint64(), &all, 1, nn_mpi_uint64(), comm) }
        return all
    }

    public func barrier() { watched(.barrier) { MPI_Barrier(comm) } }

    public func finalize() {
        subsets.forEach { $0.freeResources() }
        subsets = []
        freeResources()
        MPI_Finalize()
    }

    /// Frees what this communicator made: its reductions, its watchdog, its
    /// duplicates, and its communicator unless it is the world.
    private func freeResources() {
        shared.forEach { $0.free() }
        shared = []
        sumsThroughShared = false
        for (_, op) in halfSums {
            var freed: MPI_Op? = op
            MPI_Op_free(&freed)
        }
        halfSums = [:]
        watchdog?.finish()
        watchdog = nil
        gradientComm = comm
        duplicates.forEach(Self.free)
        duplicates = []
        if toolsStarted { MPI_T_finalize() }
        toolsStarted = false
        if comm != nn_mpi_comm_world() { Self.free(comm) }
    }

    // MARK: - Some of the ranks

    /// A communicator over the ranks `members` (ranks of this one, in this
    /// order of rank), for a member; nil for the others. Collective: every
    /// rank calls it with the same members. The new communicator waits as
    /// this one does and has a watchdog of its own when this one was
    /// watched; this one's watchdog stops, since the ranks outside no longer
    /// take part in the collectives it would watch. Released by `finalize`.
    public func subset(_ members: [Int]) -> MPICommunicator? {
        precondition(members.allSatisfy { (0..<size).contains($0) }, "members are ranks of this communicator")
        let member = members.contains(rank)
        var made: MPI_Comm? = nn_mpi_comm_null()
        watched(.split) { MPI_Comm_split(comm, member ? 0 : nn_mpi_undefined(), Int32(rank), &made) }
        watchdog?.finish()
        watchdog = nil
        guard member, let made else { return nil }
        let ranks = members.sorted()
        let child = MPICommunicator(comm: made, threadLevel: threadLevel, wait: wait, watchdog: watchdogSettings,
                                    worldRanks: ranks.map { worldRanks[$0] }, hostNames: ranks.map { hostNames[$0] },
                                    nodes: ranks.map { nodes[$0] })
        subsets.append(child)
        return child
    }

    // MARK: - The gradients' allreduce algorithm

    /// Times each of Open MPI's allreduce algorithms on `count` floats, and
    /// the shared-memory sum (`SharedMemorySum.swift`) when the gradients
    /// live in shared memory (a few warm-up calls, then as many timed calls
    /// as fit `secondsPerAlgorithm`, scaled by the slowest rank's warm-up,
    /// spread over `rounds` rounds of every algorithm in turn; an
    /// algorithm's time is the median of its round means) and keeps the
    /// fastest, judged by the slowest rank's time, for the gradients. Every
    /// rank computes the same choice from the same maxima.
    ///
    /// The mechanism: Open MPI's tuned component reads its forced algorithm
    /// (`coll_tuned_allreduce_algorithm`, honoured with
    /// `coll_tuned_use_dynamic_rules` set before `MPI_Init`) when a
    /// communicator is created, so the control variable is written through
    /// the MPI tool interface before each `MPI_Comm_dup` of `comm`, and
    /// each duplicate keeps its algorithm.
    public func tuneAllreduce(count: Int) -> AllreduceTuningResult? {
        guard size > 1, count > 0 else { return nil }
        let started = MPI_Wtime()
        // Every rank shares memory or none does (its allocation was agreed);
        // the shared-memory sum is timed on a window of its own.
        let sharedCandidate = shared.isEmpty ? nil : SharedWindow(count: count, comm: comm, rank: rank, size: size,
                                                                  directory: sharedBackingDirectory())
        defer { sharedCandidate?.free() }
        var numbers = AllreduceTuning.openMPINumbers
        var comms: [MPI_Comm] = []
        switch duplicatesForcing(numbers) {
        case .success(let made): comms = made
        case .failure(let problem):
            guard sharedCandidate != nil else { return .unavailable(problem.reason) }
            numbers = []
        }
        var buffer = [Float](repeating: 0, count: count)
        var seconds = [Double](), iterations = [Int]()
        buffer.withUnsafeMutableBufferPointer { scratch in
            let values = scratch
            var candidates: [() -> Void] = comms.map { comm in { self.allreduceOnce(values, comm: comm) } }
            if let sharedCandidate {
                candidates.append { self.sharedSum(sharedCandidate, offset: 0, count: count, parts: nil) }
            }
            let calls = candidates.map(agreedCallsPerRound)
            // Rounds over all algorithms in turn, so a burst of load elsewhere
            // on the host spoils one round of each rather than one algorithm.
            var rounds = [[Double]](repeating: [], count: candidates.count)
            for _ in 0..<AllreduceTuning.rounds {
                for (i, call) in candidates.enumerated() { rounds[i].append(meanSeconds(call, calls: calls[i])) }
            }
            seconds = rounds.map(AllreduceTuning.median)
            iterations = calls.map { $0 * AllreduceTuning.rounds }
        }
        if sharedCandidate != nil { numbers.append(AllreduceTuning.sharedMemory) }
        watched(.allreduce) { MPI_Allreduce(nn_mpi_in_place(), &seconds, Int32(seconds.count), nn_mpi_double(), nn_mpi_max(), comm) }
        let timings = numbers.indices.map { AllreduceTiming(algorithm: numbers[$0], seconds: seconds[$0], iterations: iterations[$0]) }
        guard let chosen = AllreduceTuning.fastest(timings), let index = numbers.firstIndex(of: chosen) else {
            comms.forEach(Self.free)
            return .unavailable("no algorithm had a usable time")
        }
        if chosen == AllreduceTuning.sharedMemory {
            comms.forEach(Self.free)
            sumsThroughShared = true
        } else {
            keep(comms[index], freeing: comms)
        }
        var elapsed = MPI_Wtime() - started
        watched(.allreduce) { MPI_Allreduce(nn_mpi_in_place(), &elapsed, 1, nn_mpi_double(), nn_mpi_max(), comm) }
        return .measured(AllreduceMeasurement(count: count, ranks: size, timings: timings, chosen: chosen, seconds: elapsed))
    }

    /// Uses algorithm `number` for the gradients, through a duplicate of the
    /// world made while the control variable forces it (see `tuneAllreduce`).
    public func useAllreduceAlgorithm(_ number: Int) -> AllreduceTuningResult? {
        guard size > 1 else { return nil }
        if number == AllreduceTuning.sharedMemory {
            guard !shared.isEmpty else {
                return .unavailable(localSize < size ? "the ranks are on several hosts, so they share no memory"
                                                     : "the gradients are not in shared memory: a rank is on a GPU, or \(sharedBackingDirectory()) has no room for them")
            }
            sumsThroughShared = true
            return .applied(number)
        }
        switch duplicatesForcing([number]) {
        case .success(let made):
            keep(made[0], freeing: made)
            return .applied(number)
        case .failure(let problem):
            return .unavailable(problem.reason)
        }
    }

    /// Why Open MPI's algorithm cannot be forced per communicator.
    private struct TuningProblem: Error {
        let reason: String
    }

    /// One duplicate of `comm` per algorithm in `numbers`, each made while
    /// `coll_tuned_allreduce_algorithm` holds that number; the variable is
    /// given back its value afterwards. Collective.
    private func duplicatesForcing(_ numbers: [Int]) -> Result<[MPI_Comm], TuningProblem> {
        // Every rank must reach the same verdict before the collective duplications.
        var problem: String?
        var found: MPI_T_cvar_handle?
        if !startTools() {
            problem = "the MPI tool interface did not start"
        } else if controlVariable("coll_tuned_use_dynamic_rules").flatMap(readFlag) != true {
            problem = "Open MPI's coll_tuned_use_dynamic_rules is off, so its algorithm cannot be forced"
        } else if let made = controlVariable("coll_tuned_allreduce_algorithm") {
            found = made
        } else {
            problem = "this MPI has no coll_tuned_allreduce_algorithm control variable"
        }
        defer { if found != nil { MPI_T_cvar_handle_free(&found) } }
        var failures: Int32 = problem == nil ? 0 : 1
        watched(.allreduce) { MPI_Allreduce(nn_mpi_in_place(), &failures, 1, nn_mpi_int(), nn_mpi_max(), comm) }
        guard failures == 0, let handle = found else {
            return .failure(TuningProblem(reason: problem ?? "another rank cannot force Open MPI's algorithm"))
        }
        var original: Int32 = 0
        MPI_T_cvar_read(handle, &original)
        defer { _ = withUnsafePointer(to: original) { MPI_T_cvar_write(handle, $0) } }
        var comms: [MPI_Comm] = []
        for number in numbers {
            var value = Int32(number)
            var duplicate: MPI_Comm? = nn_mpi_comm_null()
            MPI_T_cvar_write(handle, &value)
            watched(.duplicate) { MPI_Comm_dup(comm, &duplicate) }
            guard let duplicate else {
                comms.forEach(Self.free)
                return .failure(TuningProblem(reason: "MPI_Comm_dup failed"))
            }
            if watchdog != nil { MPI_Comm_set_errhandler(duplicate, nn_mpi_errors_return_handler()) }
            comms.append(duplicate)
        }
        return .success(comms)
    }

    /// A handle on the single-valued control variable `name`, or nil when MPI has none.
    private func controlVariable(_ name: String) -> MPI_T_cvar_handle? {
        var index: Int32 = 0, count: Int32 = 0
        guard MPI_T_cvar_get_index(name, &index) == nn_mpi_success() else { return nil }
        var handle: MPI_T_cvar_handle?
        guard MPI_T_cvar_handle_alloc(index, nil, &handle, &count) == nn_mpi_success(), count == 1 else { return nil }
        return handle
    }

    /// Reads a boolean control variable and frees its handle.
    private func readFlag(_ handle: MPI_T_cvar_handle) -> Bool? {
        var storage: Int64 = 0  // room for any integer type, read from its first bytes
        var freeing: MPI_T_cvar_handle? = handle
        defer { MPI_T_cvar_handle_free(&freeing) }
        guard MPI_T_cvar_read(handle, &storage) == nn_mpi_success() else { return nil }
        return storage != 0
    }

    /// Warms `comm` up with `values` and returns the timed calls per round
    /// for it, from the slowest rank's last warm-up call, so every rank makes as many.
    private func agreedCallsPerRound(_ call: () -> Void) -> Int {
        for _ in 1..<AllreduceTuning.warmUpCalls { call() }
        var callSeconds = MPI_Wtime()
        call()
        callSeconds = MPI_Wtime() - callSeconds
        watched(.allreduce) { MPI_Allreduce(nn_mpi_in_place(), &callSeconds, 1, nn_mpi_double(), nn_mpi_max(), comm) }
        return AllreduceTuning.callsPerRound(AllreduceTuning.iterations(callSeconds: callSeconds))
    }

    /// This rank's mean seconds of `calls` calls of `call`, after a barrier.
    private func meanSeconds(_ call: () -> Void, calls: Int) -> Double {
        watched(.barrier) { MPI_Barrier(comm) }
        let start = MPI_Wtime()
        for _ in 0..<calls { call() }
        return (MPI_Wtime() - start) / Double(calls)
    }

    private func allreduceOnce(_ values: UnsafeMutableBufferPointer<Float>, comm: MPI_Comm) {
        watched(.allreduce) {
            MPI_Allreduce(nn_mpi_in_place(), values.baseAddress, Int32(values.count), nn_mpi_float(), nn_mpi_sum(), comm)
        }
    }

    /// Uses `chosen` for the gradients from now on and frees the other duplicates in `made`.
    private func keep(_ chosen: MPI_Comm, freeing made: [MPI_Comm]) {
        made.filter { $0 != chosen }.forEach(Self.free)
        duplicates.append(chosen)
        gradientComm = chosen
    }

    private static func free(_ comm: MPI_Comm) {
        var freeing: MPI_Comm? = comm
        MPI_Comm_free(&freeing)
    }

    /// Every world rank's node, by rank: the lowest rank of its
    /// `MPI_COMM_TYPE_SHARED` communicator (before the watchdog starts).
    private static func gatherNodes(_ world: MPI_Comm, size: Int) -> [Int] {
        var rank: Int32 = 0
        MPI_Comm_rank(world, &rank)
        var local: MPI_Comm? = nn_mpi_comm_null()
        MPI_Comm_split_type(world, nn_mpi_comm_type_shared(), rank, nn_mpi_info_null(), &local)
        var leader = rank
        MPI_Bcast(&leader, 1, nn_mpi_int(), 0, local)
        MPI_Comm_free(&local)
        var leaders = [Int32](repeating: 0, count: size)
        MPI_Allgather(&leader, 1, nn_mpi_int(), &leaders, 1, nn_mpi_int(), world)
        return leaders.map(Int.init)
    }

    /// Every rank's processor name, by rank (before the watchdog starts).
    private static func gatherProcessorNames(_ world: MPI_Comm, size: Int) -> [String] {
        let width = 256
        var mine = [CChar](repeating: 0, count: width), length: Int32 = 0
        MPI_Get_processor_name(&mine, &length)
        var all = [CChar](repeating: 0, count: width * size)
        MPI_Allgather(&mine, Int32(width), nn_mpi_char(), &all, Int32(width), nn_mpi_char(), world)
        return (0..<size).map { r in
            all[r * width..<(r + 1) * width].withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }
}

/// How a rank waits in the sum allreduces for ranks that have not arrived.
public enum CollectiveWait: Equatable, Sendable {
    /// Pauses between tests of a request, in microseconds: `first`, doubled
    /// after each test up to `longest`. A `first` of 0 yields the core
    /// (`sched_yield`) between tests instead of sleeping.
    public struct Backoff: Equatable, Sendable {
        public var first: Int
        public var longest: Int

        /// A backoff from `first` to `longest` microseconds.
        public init(first: Int, longest: Int) {
            self.first = first
            self.longest = max(first, longest)
        }

        /// `sched_yield` between tests: the fastest measured with 4 ranks on 2 cores.
        public static let yieldOnly = Backoff(first: 0, longest: 0)
        /// 20 µs doubling up to 1 ms.
        public static let sleeping = Backoff(first: 20, longest: 1000)
    }

    /// MPI's own blocking call: the fastest when every rank has a core.
    case blocking
    /// The ranks first meet in a non-blocking barrier, tested with the
    /// backoff, and then run the blocking allreduce, so the sums are the
    /// blocking call's bit for bit. For hosts with more ranks than cores,
    /// where a rank spinning in MPI takes the core a late rank needs.
    case yielding(Backoff)
}
