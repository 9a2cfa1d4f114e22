// How a rank ends a job its watchdog found stalled or broken: the line, the
// run record, and a helper that ends the launcher's daemon on this host if
// the daemon cannot (across a lost link neither mpirun nor orted can reach
// the other to end the job, and nothing else would).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum JobEnd {
    /// Seconds the launcher's daemon has to end the job before it is killed.
    static let daemonGrace = 5.0

    /// The processes of Open MPI that start ranks.
    static let daemons: Set<String> = ["mpirun", "mpiexec", "orterun", "orted", "prterun", "prted"]

    /// Flushes what was written, starts the daemon's reaper, and exits with
    /// status 2 at once (no MPI call: one could block on the lost peer).
    static func exitStalled() -> Never {
        fflush(nil)
        spawnDaemonReaper()
        _exit(2)
    }

    /// Starts `sh` in a session of its own to kill this process's parent if
    /// it is Open MPI's launcher or daemon and still runs after the grace
    /// period (under Slurm's srun the parent is slurmstepd, which ends the
    /// step itself, and is left alone).
    static func spawnDaemonReaper() {
        let parent = getppid()
        let comm = (try? String(contentsOfFile: "/proc/\(parent)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard daemons.contains(comm) else { return }
        let checks = Int((daemonGrace / 0.2).rounded(.up))
        let script = "i=0; while [ $i -lt \(checks) ]; do [ -e /proc/\(parent) ] || exit 0; sleep 0.2; i=$((i+1)); done; "
            + "[ \"$(cat /proc/\(parent)/comm 2>/dev/null)\" = \(comm) ] && kill -9 \(parent)"
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        // glibc's POSIX_SPAWN_SETSID (a GNU extension Swift does not import):
        // the helper must outlive this process's group when the launcher kills it.
        posix_spawnattr_setflags(&attributes, 0x80)
        let arguments = ["/bin/sh", "-c", script]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        posix_spawn(&pid, "/bin/sh", nil, &attributes, &argv, environ)
        posix_spawnattr_destroy(&attributes)
    }
}
