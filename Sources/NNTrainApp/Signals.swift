// SIGTERM, SIGINT and SIGUSR1 (Slurm's time limit, `kill`, Ctrl-C) as a stop
// request, honoured at the next step boundary by every rank together.

import NNTraining
#if canImport(Glibc)
import Glibc
#endif

/// A stop request raised by a signal.
final class SignalStop: StopRequest {
    nonisolated(unsafe) private static var raised: sig_atomic_t = 0

    /// Installs the handlers. A second signal of the same kind ends the
    /// process at once, as usual.
    init() {
        let handler: @convention(c) (Int32) -> Void = { signal in
            SignalStop.raised = 1
            Glibc.signal(signal, SIG_DFL)
        }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
        signal(SIGUSR1, handler)
    }

    var isRequested: Bool { SignalStop.raised != 0 }
}
