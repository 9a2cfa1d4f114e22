// SIGTERM, SIGINT and SIGUSR1 (Slurm's time limit, `kill`, Ctrl-C) as a stop
// request, honoured at the next step boundary by every rank together.

import NNDistributed
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

/// Rank 0's stop request when some ranks stand by: its own signals, or a
/// stand-by rank's (which that rank sends rank 0, since it takes part in no
/// poll). Once asked, it stays asked.
final class StopFromStandingBy: StopRequest {
    private let own: any StopRequest
    private let world: MPICommunicator
    private var asked = false

    init(_ own: any StopRequest, world: MPICommunicator) {
        self.own = own
        self.world = world
    }

    var isRequested: Bool {
        if !asked { asked = own.isRequested || world.standingByAskedToStop() }
        return asked
    }
}
