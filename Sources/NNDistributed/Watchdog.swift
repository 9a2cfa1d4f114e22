// The watchdog of one rank of an MPI job. A blocking collective cannot be
// interrupted, and a rank that is stopped (SIGSTOP), killed on another host
// or cut off from the network never arrives: the others would wait forever.
// So a thread of each rank watches the main thread's collectives:
//
// - when one has waited longer than the timeout, or
// - when a stop signal arrives while one waits (mpirun's way of ending a job
//   whose rank died), or
// - when one returns an error (a TCP peer gone),
//
// it holds a roll call over a communicator of its own (every rank's watchdog
// answers, whatever its main thread is doing), and ends the job with one
// line that names the ranks that did not answer, or are alive but elsewhere,
// with their hosts and the step, to the application's `onStop`, which ends
// the process without another MPI call (one could block on the lost peer).
//
// It needs MPI_THREAD_MULTIPLE: the roll call runs while the main thread is
// inside a collective.

import CMPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How patient the watchdog is, and what it tells the application.
public struct WatchdogSettings {
    /// Seconds a collective may wait before the job is stopped.
    public var timeout: Double
    /// Seconds a roll call waits for the other ranks' answers.
    public var answerWindow: Double
    /// Seconds a collective may go on waiting after a stop signal before the
    /// ranks are counted (a healthy job reaches the next step boundary first),
    /// and how long that roll call waits: mpirun kills a job's ranks 1 s after
    /// its SIGTERM, and the line must be out by then.
    public var signalWait: Double, signalAnswerWindow: Double
    /// Ends the job, on the watchdog's thread: the line that says why, and
    /// whether this rank is the one to print it (the lowest rank still
    /// waiting). It must not return, and must not call MPI.
    public var onStop: (_ message: String, _ reports: Bool) -> Never
    /// A remark that does not stop the job (this rank is the one to print it).
    public var onNote: (String) -> Void = { _ in }
    /// Whether a stop signal arrived (mpirun sends SIGTERM when a rank dies).
    public var stopRequested: () -> Bool = { false }

    public init(timeout: Double, answerWindow: Double = 1, signalWait: Double = 0.1, signalAnswerWindow: Double = 0.4,
                onStop: @escaping (_ message: String, _ reports: Bool) -> Never) {
        self.timeout = timeout
        self.answerWindow = answerWindow
        self.signalWait = signalWait
        self.signalAnswerWindow = signalAnswerWindow
        self.onStop = onStop
    }
}

/// The collectives the watchdog names.
enum CollectiveKind: UInt64 {
    case allreduce = 1, broadcast, allgather, barrier, duplicate, reduceScatter, split

    var name: String {
        switch self {
        case .allreduce: return "allreduce"
        case .broadcast: return "broadcast"
        case .allgather: return "allgather"
        case .barrier: return "barrier"
        case .duplicate: return "communicator duplication"
        case .reduceScatter: return "reduce-scatter"
        case .split: return "communicator split"
        }
    }
}

/// Watches one rank's collectives; see the file's introduction.
final class Watchdog: @unchecked Sendable {
    private let settings: WatchdogSettings
    private let rank: Int, size: Int
    private let hosts: [String]
    /// Each rank's number in the job's world, as messages name it (the
    /// watched ranks may be some of the world's).
    private let worldRanks: [Int]
    private let comm: MPI_Comm
    /// Shared with the main thread: [0] when the current collective began
    /// (ns since boot; 0 outside collectives), [1] its sequence number,
    /// [2] the step, [3] its kind.
    private let shared = UnsafeMutablePointer<UInt64>.allocate(capacity: 4)
    /// The main thread's own count of collectives.
    private var sequence: UInt64 = 0

    // The watchdog thread's own state.
    private let ping = UnsafeMutablePointer<Int64>.allocate(capacity: Message.width)
    private var pingRequest: MPI_Request?
    private var replies: [(MPI_Request?, UnsafeMutablePointer<Int64>)] = []
    private var lastCounted: UInt64 = 0
    /// How long this process was last suspended, and when it woke.
    private var suspension: (seconds: Double, woke: UInt64)?
    /// The start-up collective found to wait for slow ranks only, and until
    /// when that holds before they are asked again.
    private var excused: (sequence: UInt64, until: UInt64) = (0, 0)
    /// Set by the main thread before MPI_Finalize; the thread then stops.
    private let finishing = Locked(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Why a collective failed, from the main thread.
    private let failure = Locked<String?>(nil)

    /// A watchdog over the ranks of `watched` (the world or some of its
    /// ranks; it duplicates it for its roll calls); `hosts` names every
    /// rank's host, `worldRanks` its number in the world.
    init(settings: WatchdogSettings, watched: MPI_Comm, rank: Int, size: Int, hosts: [String], worldRanks: [Int]) {
        self.settings = settings
        self.rank = rank
        self.size = size
        self.hosts = hosts
        self.worldRanks = worldRanks
        var duplicate: MPI_Comm? = nn_mpi_comm_null()
        MPI_Comm_dup(watched, &duplicate)
        comm = duplicate!
        MPI_Comm_set_errhandler(comm, nn_mpi_errors_return_handler())
        shared.initialize(repeating: 0, count: 4)
        ping.initialize(repeating: 0, count: Message.width)
    }

    /// Starts the watching thread.
    func start() {
        MPI_Irecv(ping, Int32(Message.width), nn_mpi_int64(), nn_mpi_any_source(), Message.pingTag, comm, &pingRequest)
        let thread = Thread { [self] in watch() }
        thread.name = "nntrain watchdog"
        thread.start()
    }

    // MARK: - The main thread's side

    /// The main thread enters a collective.
    func enter(_ kind: CollectiveKind) {
        sequence += 1
        nn_atomic_store(shared + 1, sequence)
        nn_atomic_store(shared + 3, kind.rawValue)
        nn_atomic_store(shared, Self.now())
    }

    /// The main thread left its collective.
    func leave() { nn_atomic_store(shared, 0) }

    /// Stops the watching thread and waits for it, before MPI_Finalize: no
    /// call of its may come after.
    func finish() {
        finishing.withLock { $0 = true }
        finished.wait()
    }

    /// The training step the main thread works on (for messages).
    func note(step: Int) { nn_atomic_store(shared + 2, UInt64(max(step, 0))) }

    /// A collective returned an MPI error: the watchdog's thread counts the
    /// ranks and ends the job; the main thread waits for that.
    func failed(_ kind: CollectiveKind, code: Int32) -> Never {
        let reason = "the \(kind.name) of step \(nn_atomic_load(shared + 2)) failed on rank \(worldRank(rank)) (\(mpiErrorText(code)))"
        failure.withLock { $0 = reason }
        while true { sleep(1) }
    }

    // MARK: - The watchdog's thread

    private func watch() {
        while true {
            let asleep = Self.now()
            usleep(50_000)
            if finishing.withLock({ $0 }) {
                closeRollCalls()
                finished.signal()
                return
            }
            // A sleep of 50 ms that lasted over a second: this process was
            // suspended (SIGSTOP), and whatever it now finds is its own doing.
            let tick = Self.now()
            if Double(tick &- asleep) / 1e9 > 1 { suspension = (Double(tick &- asleep) / 1e9, tick) }
            answerPings()
            if let reason = failure.withLock({ $0 }) { stop(reason: reason, answers: rollCall()) }
            let entered = nn_atomic_load(shared)
            guard entered != 0 else { continue }
            let waited = Double(Self.now() &- entered) / 1e9
            let kind = CollectiveKind(rawValue: nn_atomic_load(shared + 3))?.name ?? "collective"
            let step = nn_atomic_load(shared + 2)
            let current = nn_atomic_load(shared + 1)
            if waited > settings.timeout && (current != excused.sequence || tick >= excused.until) {
                let answers = rollCall()
                // Before the first step every rank loads its own data, at its
                // own pace: when every rank answers and some are busy outside
                // any collective, they are only slow, and are waited for
                // (asked again after another timeout).
                let busy = answers.values.filter { !$0.waiting }
                if step == 0 && answers.count == size - 1 && !busy.isEmpty && busy.allSatisfy({ $0.step == 0 }) {
                    let first = current != excused.sequence
                    excused = (current, Self.now() + UInt64(settings.timeout * 1e9))
                    // The lowest waiting rank says it, once per collective.
                    let lowerWaiting = answers.contains { $0.key < rank && $0.value.waiting }
                    if first && !lowerWaiting {
                        settings.onNote("rank \(worldRank(rank)) has waited \(Int(waited)) s in start-up for ranks still loading; every rank answers, so it waits on")
                    }
                    continue
                }
                stop(reason: "the \(kind) of step \(step) has waited \(Int(waited)) s on rank \(worldRank(rank)) (--collective-timeout \(formatted(settings.timeout)) s)",
                     answers: answers)
            }
            if settings.stopRequested(), waited > settings.signalWait, current != lastCounted {
                // A stop signal while waiting: is a rank gone? If every rank
                // answers, the job is only slow and stops at the next step.
                lastCounted = current
                let answers = rollCall(window: settings.signalAnswerWindow)
                if answers.count < size - 1 {
                    stop(reason: "rank \(worldRank(rank)): a rank was lost during the \(kind) of step \(step) (the launcher is ending the job)",
                         answers: answers)
                }
            }
        }
    }

    /// What a rank says of itself in a roll call.
    struct Message {
        static let width = 3
        static let pingTag: Int32 = 7001, answerTag: Int32 = 7002
        /// Its collective's sequence number, whether it waits in it, and its step.
        var sequence: UInt64, waiting: Bool, step: UInt64
    }

    /// This rank's state, as an answer.
    private func myState() -> Message {
        let entered = nn_atomic_load(shared)
        return Message(sequence: nn_atomic_load(shared + 1), waiting: entered != 0, step: nn_atomic_load(shared + 2))
    }

    /// Withdraws the posted ping receive, lets the answers in flight finish,
    /// and frees the roll calls' communicator.
    private func closeRollCalls() {
        MPI_Cancel(&pingRequest)
        MPI_Wait(&pingRequest, nn_mpi_status_ignore())
        for (request, buffer) in replies {
            var request = request
            MPI_Wait(&request, nn_mpi_status_ignore())
            buffer.deallocate()
        }
        replies.removeAll()
        var comm: MPI_Comm? = self.comm
        MPI_Comm_free(&comm)
    }

    /// Answers every ping that has arrived, and frees finished answers.
    private func answerPings() {
        while true {
            var done: Int32 = 0
            var status = MPI_Status()
            MPI_Test(&pingRequest, &done, &status)
            guard done != 0 else { break }
            send(myState(), to: Int(status.MPI_SOURCE), tag: Message.answerTag)
            MPI_Irecv(ping, Int32(Message.width), nn_mpi_int64(), nn_mpi_any_source(), Message.pingTag, comm, &pingRequest)
        }
        replies.removeAll { request, buffer in
            var done: Int32 = 0
            var request = request
            MPI_Test(&request, &done, nn_mpi_status_ignore())
            if done != 0 { buffer.deallocate() }
            return done != 0
        }
    }

    private func send(_ message: Message, to destination: Int, tag: Int32) {
        let buffer = UnsafeMutablePointer<Int64>.allocate(capacity: Message.width)
        buffer[0] = Int64(bitPattern: message.sequence)
        buffer[1] = message.waiting ? 1 : 0
        buffer[2] = Int64(bitPattern: message.step)
        var request: MPI_Request?
        MPI_Isend(buffer, Int32(Message.width), nn_mpi_int64(), Int32(destination), tag, comm, &request)
        replies.append((request, buffer))
    }

    /// Asks every other rank for its state; returns the answers that came
    /// within the answer window, by rank, answering others' calls meanwhile.
    private func rollCall(window: Double? = nil) -> [Int: Message] {
        let others = (0..<size).filter { $0 != rank }
        let mine = myState()
        var pending: [Int: (MPI_Request?, UnsafeMutablePointer<Int64>)] = [:]
        for other in others {
            send(mine, to: other, tag: Message.pingTag)
            let buffer = UnsafeMutablePointer<Int64>.allocate(capacity: Message.width)
            var request: MPI_Request?
            MPI_Irecv(buffer, Int32(Message.width), nn_mpi_int64(), Int32(other), Message.answerTag, comm, &request)
            pending[other] = (request, buffer)
        }
        var answers: [Int: Message] = [:]
        let deadline = Self.now() + UInt64((window ?? settings.answerWindow) * 1e9)
        while !pending.isEmpty && Self.now() < deadline {
            answerPings()
            for (other, entry) in pending {
                var request = entry.0, done: Int32 = 0
                MPI_Test(&request, &done, nn_mpi_status_ignore())
                pending[other]!.0 = request
                guard done != 0 else { continue }
                let b = entry.1
                answers[other] = Message(sequence: UInt64(bitPattern: b[0]), waiting: b[1] != 0, step: UInt64(bitPattern: b[2]))
                b.deallocate()
                pending[other] = nil
            }
            usleep(2_000)
        }
        // Unanswered receives stay posted: the process ends soon, or (a
        // signal with every rank present) they cannot be answered late.
        return answers
    }

    /// Ends the job: says why, names the ranks, exits.
    private func stop(reason: String, answers: [Int: Message]) -> Never {
        let mine = myState()
        let missing = (0..<size).filter { $0 != rank && answers[$0] == nil }
        let elsewhere = answers.filter { !$0.value.waiting || $0.value.sequence < mine.sequence }.keys.sorted()
        var findings: [String] = []
        if !missing.isEmpty {
            findings.append("\(list(missing)) did not answer (stopped, killed, or cut off from the network)")
        }
        if !elsewhere.isEmpty {
            let steps = elsewhere.map { "step \(answers[$0]!.step)" }
            findings.append("\(list(elsewhere)) \(elsewhere.count == 1 ? "is" : "are") alive but not in this collective (at \(steps.joined(separator: ", ")))")
        }
        if findings.isEmpty { findings.append("every rank answered and waits in it: the network between the ranks is not delivering") }
        var message = reason + "; " + findings.joined(separator: "; ") + "; stopping every rank"
        if let suspension, Double(Self.now() &- suspension.woke) / 1e9 < 30 {
            // Woken into a job that ended: the others stopped waiting for this
            // rank, and its view says nothing of theirs.
            message = "rank \(worldRank(rank)) (host \(hosts.indices.contains(rank) ? hosts[rank] : "?")) was suspended for \(Int(suspension.seconds.rounded())) s (stopped, e.g. by SIGSTOP); the job ended meanwhile"
        }
        // The lowest rank among those still waiting with this one prints the line.
        let waitingWithMe = answers.filter { $0.value.waiting && $0.value.sequence >= mine.sequence }.keys
        let reports = waitingWithMe.allSatisfy { $0 > rank }
        if !reports {
            // The rank that prints may reach its own timeout a little later:
            // answer its roll call before leaving, or it would count this
            // rank as lost.
            let until = Self.now() + UInt64((settings.answerWindow + settings.signalWait + 0.5) * 1e9)
            while Self.now() < until {
                answerPings()
                usleep(5_000)
            }
        }
        settings.onStop(message, reports)
    }

    /// Rank `rank`'s number in the world.
    private func worldRank(_ rank: Int) -> Int { worldRanks[rank] }

    /// `rank 1 (host h2)`, `ranks 1 (h2), 3 (h4)`.
    private func list(_ ranks: [Int]) -> String {
        let named = ranks.map { "\(worldRank($0)) (host \(hosts.indices.contains($0) ? hosts[$0] : "?"))" }
        return (ranks.count == 1 ? "rank " : "ranks ") + named.joined(separator: ", ")
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// MPI's text for an error code.
func mpiErrorText(_ code: Int32) -> String {
    var text = [CChar](repeating: 0, count: 512)
    var length: Int32 = 0
    MPI_Error_string(code, &text, &length)
    return String(cString: text)
}

/// `60`, `2.5`: seconds as the user wrote them.
func formatted(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
}
