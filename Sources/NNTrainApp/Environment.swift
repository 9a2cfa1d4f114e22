// Everything nntrain reads from its environment, in one place: the library
// below it takes values, never variables.

import Foundation
import NNCUDA
import NNCore
import NNDistributed
import NNTraining
import SafeTensors
#if canImport(Glibc)
import Glibc
#endif

enum Environment {
    static func value(_ name: String) -> String? {
        guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return nil }
        return text
    }

    /// Whether an MPI launcher (`mpirun`, `srun`) started this process, judged
    /// from the variables launchers set. Without one, nntrain runs as a world
    /// of one and never calls `MPI_Init`.
    static var launchedByMPI: Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { value($0) != nil }
    }

    /// BLAS threads per rank: max(1, cores / ranks on this host), and 1 on
    /// an oversubscribed host, unless OPENBLAS_NUM_THREADS says otherwise;
    /// with the reason, for the start-up line.
    static func blasThreads(localRanks: Int, oversubscribed: Bool = false) -> (count: Int, reason: String) {
        if let text = value("OPENBLAS_NUM_THREADS"), let n = Int(text), n > 0 {
            return (n, "OPENBLAS_NUM_THREADS=\(n)")
        }
        if oversubscribed { return (1, "1 thread per rank on an oversubscribed host") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let n = max(1, cores / max(1, localRanks))
        return (n, "\(cores) cores / \(localRanks) rank\(localRanks == 1 ? "" : "s") on this host")
    }

    /// Whether rank 0 draws the live progress bar. Under an MPI launcher its
    /// output is a pseudo-terminal even when mpirun writes to a file, so the
    /// bar is off there unless `NNTRAIN_PROGRESS=bar` asks for it (`plain`
    /// turns it off anywhere).
    static func drawsProgressBar(underLauncher: Bool) -> Bool {
        switch value("NNTRAIN_PROGRESS") {
        case "bar": return true
        case "plain": return false
        default: return !underLauncher && isatty(STDOUT_FILENO) != 0 && value("TERM") != "dumb"
        }
    }

    /// `NNTRAIN_MEMORY_LIMIT` (`8G`, `512M`, bytes): the memory a run may
    /// use on this host, in place of the one read from the cgroup and
    /// /proc/meminfo (nil: not set).
    static func memoryLimit() throws -> HostMemory.Limit? {
        guard let text = value("NNTRAIN_MEMORY_LIMIT") else { return nil }
        guard let bytes = ByteCount.parse(text) else {
            throw UserError("NNTRAIN_MEMORY_LIMIT: '\(text)' is not a size; give e.g. 8G, 512M or a number of bytes")
        }
        return HostMemory.Limit(bytes: bytes, source: "NNTRAIN_MEMORY_LIMIT")
    }

    /// The prepared-data cache: `--data-cache DIR`, none with `--data-cache
    /// none`, else `$XDG_CACHE_HOME/nntrain`, else `$HOME/.cache/nntrain`
    /// (none when neither variable is set).
    static func dataCache(flag: String?) -> DataCache? {
        if let flag { return flag == "none" ? nil : DataCache(directory: flag) }
        if let base = value("XDG_CACHE_HOME") { return DataCache(directory: base + "/nntrain") }
        if let home = value("HOME") { return DataCache(directory: home + "/.cache/nntrain") }
        return nil
    }

    /// Where cuBLAS and NVRTC are looked for first: `NNTRAIN_CUBLAS_DIR` and
    /// `NNTRAIN_NVRTC_DIR`, colon-separated lists of directories.
    static func applyCUDALibraryPaths() {
        CUDALibraryPaths.cublas = CUDALibraryPaths.directories(value("NNTRAIN_CUBLAS_DIR"))
        CUDALibraryPaths.nvrtc = CUDALibraryPaths.directories(value("NNTRAIN_NVRTC_DIR"))
    }

    // MARK: - Ranks and cores

    /// The CPUs this process may run on (its affinity, from
    /// /proc/self/status), else as many as Foundation counts.
    static func allowedCPUs() -> [Int] {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
           let cpus = HostLoad.cpus(list: line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)) {
            return cpus
        }
        return Array(0..<max(1, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The ranks on this host against the cores they share, gathered from
    /// every rank's affinity (a collective; see `HostLoad.measure`).
    static func hostLoad(_ communicator: any Communicator) -> HostLoad {
        HostLoad.measure(communicator, nodes: nodes(communicator), allowedCPUs: allowedCPUs())
    }

    /// Every rank's node, as MPI groups ranks that share memory (ranks in
    /// network namespaces of one machine share its host name but not a
    /// node); one node for a job outside MPI.
    static func nodes(_ communicator: any Communicator) -> [Int] {
        (communicator as? MPICommunicator)?.nodes ?? Array(repeating: 0, count: communicator.size)
    }

    /// The host's load as a rank guesses it before `MPI_Init`, from the local
    /// size Open MPI's launcher sets and whether it bound the rank (nil
    /// without that size).
    static var hostLoadAtLaunch: HostLoad? {
        guard let text = value("OMPI_COMM_WORLD_LOCAL_SIZE"), let ranks = Int(text), ranks > 0 else { return nil }
        let cores = HostLoad.cores(allowed: allowedCPUs().count, online: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))),
                                   boundByLauncher: value("OMPI_MCA_orte_bound_at_launch") == "1")
        return HostLoad(ranks: ranks, cores: cores)
    }

    /// On an oversubscribed host, asks Open MPI to yield the core while it
    /// waits (`mpi_yield_when_idle`) unless the user set it. mpirun turns it
    /// on by itself only when it counts more ranks than slots, not when the
    /// slots or a CPU set outnumber the cores.
    static func applyOversubscriptionDefaults(_ load: HostLoad?) {
        guard let load, load.isOversubscribed else { return }
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0)
    }

    /// How the sum allreduces wait: `NNTRAIN_COLLECTIVE_WAIT` (`blocking` or
    /// `yielding`), else blocking. On an oversubscribed host the blocking
    /// call, with Open MPI yielding the core while it waits, measured as
    /// fast as the yielding barrier and varied less.
    static func collectiveWait() throws -> CollectiveWait {
        switch value("NNTRAIN_COLLECTIVE_WAIT") {
        case nil: return .blocking
        case "blocking": return .blocking
        case "yielding": return .yielding(try backoff())
        case let other?:
            throw UserError("NNTRAIN_COLLECTIVE_WAIT: '\(other)' is not a wait; give blocking or yielding")
        }
    }

    /// `NNTRAIN_COLLECTIVE_BACKOFF=FIRST,LONGEST`: microseconds slept between
    /// tests of a yielding wait, doubling from FIRST to LONGEST (`0,0`, the
    /// default: `sched_yield` instead of sleeping).
    static func backoff() throws -> CollectiveWait.Backoff {
        guard let text = value("NNTRAIN_COLLECTIVE_BACKOFF") else { return .yieldOnly }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let first = parts[0], let longest = parts[1], first >= 0, longest >= 0, longest <= 1_000_000 else {
            throw UserError("NNTRAIN_COLLECTIVE_BACKOFF: '\(text)' is not FIRST,LONGEST in microseconds; give e.g. 20,1000 (0,0: sched_yield)")
        }
        return CollectiveWait.Backoff(first: first, longest: longest)
    }

    // MARK: - Open MPI's allreduce algorithm

    /// Prepares Open MPI, before `MPI_Init`, for the way `request` (the
    /// `--allreduce-algorithm` flag) and the environment choose the
    /// gradients' allreduce algorithm, and says which way that is. In order:
    /// the flag when it names an algorithm or `default`; a user's
    /// `OMPI_MCA_coll_tuned_allreduce_algorithm` (also what `--mca` on
    /// mpirun sets); `NNTRAIN_ALLREDUCE=default`; otherwise measuring, for
    /// which Open MPI's dynamic rules must be on from the start.
    static func applyAllreduceDefaults(_ request: AllreduceRequest) -> AllreducePlan {
        let variable = "OMPI_MCA_coll_tuned_allreduce_algorithm"
        switch request {
        case .algorithm(AllreduceTuning.sharedMemory):
            // Not Open MPI's: chosen once the gradients' memory is shared.
            return .fixed(AllreduceTuning.sharedMemory, source: "--allreduce-algorithm \(request.flagValue)")
        case .algorithm(let number):
            setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 1)
            setenv(variable, String(number), 1)
            return .fixed(number, source: "--allreduce-algorithm \(request.flagValue)")
        case .openMPIDefault:
            unsetenv(variable)
            return .openMPI(source: "--allreduce-algorithm default")
        case .measure:
            if let text = value(variable) {
                guard let number = Int(text), number != 0 else { return .openMPI(source: "\(variable)=\(text)") }
                // Open MPI honours a forced algorithm only with its dynamic rules on.
                setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0)
                return .fixed(number, source: "\(variable)=\(text)")
            }
            if value("NNTRAIN_ALLREDUCE") == "default" { return .openMPI(source: "NNTRAIN_ALLREDUCE=default") }
            setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0)
            return .measure
        }
    }

    /// The allreduce algorithm Open MPI was told to use, for reports.
    static var allreduceAlgorithm: String {
        guard let text = value("OMPI_MCA_coll_tuned_allreduce_algorithm"), let n = Int(text), n != 0 else {
            return "Open MPI's default decision"
        }
        return "\(n) (\(AllreduceTuning.name(n)))"
    }

    // MARK: - Test hooks

    /// `NNTRAIN_TEST_WRITE_PAUSE_SECONDS=S` (with `NNTRAIN_TEST_WRITE_PAUSE_SKIP=K`):
    /// every model and checkpoint write after the first K pauses for S seconds
    /// half-way, after announcing it on standard error, so a crash test can
    /// kill the process mid-write.
    static func installTestHooks() {
        guard let seconds = writePause(value("NNTRAIN_TEST_WRITE_PAUSE_SECONDS")) else { return }
        let skip = value("NNTRAIN_TEST_WRITE_PAUSE_SKIP").flatMap { Int($0) } ?? 0
        MidWritePause.installed = MidWritePause(seconds: seconds, skip: skip) { path in
            fputs("nntrain-test: pausing mid-write of \(path)\n", stderr)
            fflush(stderr)
        }
    }

    /// The pause a value of `NNTRAIN_TEST_WRITE_PAUSE_SECONDS` asks for, or nil
    /// when it is unset, not a number or not positive.
    static func writePause(_ text: String?) -> Double? {
        guard let text, let seconds = Double(text), seconds.isFinite, seconds > 0 else { return nil }
        return min(seconds, 86_400)
    }
}
