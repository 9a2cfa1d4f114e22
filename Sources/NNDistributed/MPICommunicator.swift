// The Open MPI implementation of `Communicator`.

import CMPI
import NNCore
#if canImport(Glibc)
import Glibc
#endif

/// Collectives over `MPI_COMM_WORLD`, watched by a `Watchdog` when one is asked for.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    /// Every rank's host name (MPI's processor name), by rank.
    public let hostNames: [String]
    /// Why there is no watchdog though one was asked for (nil: none asked, or it runs).
    public private(set) var watchdogProblem: String?
    private let world: MPI_Comm
    private var watchdog: Watchdog?
    /// How the sum allreduces wait for the other ranks (see `CollectiveWait`);
    /// every rank must use the same.
    public var wait: CollectiveWait

    /// Initializes MPI (once per process). Open MPI reads its settings, such
    /// as the allreduce algorithm, from the environment at this point. With
    /// `watchdog` settings every collective is watched (see `Watchdog`); that
    /// needs MPI_THREAD_MULTIPLE, and collectives then report errors to the
    /// watchdog instead of aborting inside MPI. `wait` is how the sum
    /// allreduces wait for the other ranks (see `CollectiveWait`).
    public init(watchdog settings: WatchdogSettings? = nil, wait: CollectiveWait = .blocking) {
        self.wait = wait
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, settings == nil ? 0 : nn_mpi_thread_multiple(), &provided)
        world = nn_mpi_comm_world()
        var value: Int32 = 0
        MPI_Comm_rank(world, &value)
        rank = Int(value)
        MPI_Comm_size(world, &value)
        size = Int(value)
        var local: MPI_Comm? = nn_mpi_comm_null()
        MPI_Comm_split_type(world, nn_mpi_comm_type_shared(), Int32(rank), nn_mpi_info_null(), &local)
        MPI_Comm_rank(local, &value)
        localRank = Int(value)
        MPI_Comm_size(local, &value)
        localSize = Int(value)
        MPI_Comm_free(&local)
        hostNames = Self.gatherProcessorNames(world, size: size)
        guard let settings, size > 1 else { return }
        guard provided >= nn_mpi_thread_multiple() else {
            watchdogProblem = "this MPI library lacks MPI_THREAD_MULTIPLE, so stalled collectives are not watched"
            return
        }
        let watchdog = Watchdog(settings: settings, world: world, rank: rank, size: size, hosts: hostNames)
        MPI_Comm_set_errhandler(world, nn_mpi_errors_return_handler())
        watchdog.start()
        self.watchdog = watchdog
    }

    public var name: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let version = String(cString: buffer).split(separator: ",").first.map(String.init) ?? "MPI"
        return "\(version), \(size) rank\(size == 1 ? "" : "s")"
    }

    public func markProgress(step: Int) { watchdog?.note(step: step) }

    /// Runs one MPI collective under the watchdog.
    private func watched(_ kind: CollectiveKind, _ call: () -> Int32) {
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
        watched(.allreduce) {
            reduce { MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_float(), nn_mpi_sum(), world) }
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        watched(.allreduce) {
            reduce { MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_double(), nn_mpi_sum(), world) }
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
            var request: MPI_Request? = nn_mpi_request_null()
            let code = MPI_Ibarrier(world, &request)
            guard code == nn_mpi_success() else { return code }
            let waited = waitYielding(&request, backoff)
            return waited == nn_mpi_success() ? blocking() : waited
        }
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

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        guard size > 1, let base = buffer.baseAddress, buffer.count > 0 else { return }
        // Counts are Int32: send large buffers in pieces.
        let chunk = 1 << 30
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            watched(.broadcast) { MPI_Bcast(base + offset, Int32(n), nn_mpi_byte(), Int32(root), world) }
            offset += n
        }
    }

    public func allGather(_ value: UInt64) -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        watched(.allgather) { MPI_Allgather(&mine, 1, nn_mpi_uint64(), &all, 1, nn_mpi_uint64(), world) }
        return all
    }

    public func barrier() { watched(.barrier) { MPI_Barrier(world) } }

    public func finalize() {
        watchdog?.finish()
        MPI_Finalize()
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

/// Open MPI's allreduce algorithms (`coll_tuned_allreduce_algorithm`).
public enum AllreduceTuning {
    /// Open MPI's numbering of `coll_tuned_allreduce_algorithm` values.
    public static let algorithms = [1: "basic linear", 2: "nonoverlapping", 3: "recursive doubling",
                                    4: "ring", 5: "segmented ring", 6: "rabenseifner"]

    /// The ring: measured fastest for gradient-sized buffers on one host.
    public static let ring = 4
}
