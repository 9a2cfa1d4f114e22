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

    /// BLAS threads per rank: max(1, cores / ranks on this host), unless
    /// OPENBLAS_NUM_THREADS says otherwise; with the reason, for the start-up line.
    static func blasThreads(localRanks: Int) -> (count: Int, reason: String) {
        if let text = value("OPENBLAS_NUM_THREADS"), let n = Int(text), n > 0 {
            return (n, "OPENBLAS_NUM_THREADS=\(n)")
        }
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
