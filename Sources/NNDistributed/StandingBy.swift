// The messages between rank 0 and the ranks that stand by while the others
// train (see `StandBy` in NNTraining). A rank that stands by takes part in
// no collective: it waits for rank 0's release, asleep between tests of one
// receive, so it needs no core. Three messages, all on the world:
//
// - stop: a stand-by rank asks rank 0 to stop the run (a signal reached it
//   alone); rank 0's next stop poll counts it;
// - release: rank 0 sends each stand-by rank the job's exit status at the end;
// - answer: each stand-by rank tells rank 0 it was released, after any stop
//   message it sent (messages between two ranks keep their order), so rank 0
//   takes every stop message before MPI_Finalize, and learns of a stand-by
//   rank that can no longer answer (stopped, or cut off) instead of waiting
//   in MPI_Finalize for it.

import CMPI
#if canImport(Glibc)
import Glibc
#endif

extension MPICommunicator {
    /// The tags of the stand-by messages (the watchdog's are on a communicator of its own).
    private enum StandByTag {
        static let stop: Int32 = 7101, release: Int32 = 7102, answer: Int32 = 7103
    }

    /// How a stand-by rank's wait ended.
    public struct StandByEnd: Equatable, Sendable {
        /// The exit status rank 0 sent, or 2 when the wait failed.
        public var status: Int32
        /// Why the wait failed (an MPI error), or nil.
        public var problem: String?
    }

    /// Waits, outside every collective, until rank 0 releases this rank
    /// (`release(standingBy:status:timeout:)`), and returns the exit status
    /// it sends. The wait sleeps `pause` microseconds (below a second)
    /// between tests of the message. When `stopRequested` turns true,
    /// rank 0 is told once (`standingByAskedToStop`).
    public func standBy(pause: Int = 10_000, stopRequested: () -> Bool) -> StandByEnd {
        // Buffers of pending requests must stay put until they complete.
        let status = UnsafeMutablePointer<Int32>.allocate(capacity: 1), flag = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        status.initialize(to: 0)
        flag.initialize(to: 1)
        defer {
            status.deallocate()
            flag.deallocate()
        }
        var release: MPI_Request? = nn_mpi_request_null(), told: MPI_Request? = nn_mpi_request_null()
        var code = MPI_Irecv(status, 1, nn_mpi_int(), 0, StandByTag.release, comm, &release)
        var done: Int32 = 0, toldRank0 = false
        while code == nn_mpi_success() {
            code = MPI_Test(&release, &done, nn_mpi_status_ignore())
            if code != nn_mpi_success() || done != 0 { break }
            if !toldRank0 && stopRequested() {
                code = MPI_Isend(flag, 1, nn_mpi_int(), 0, StandByTag.stop, comm, &told)
                toldRank0 = true
            }
            var time = timespec(tv_sec: 0, tv_nsec: min(max(pause, 1), 999_999) * 1000)
            nanosleep(&time, nil)
        }
        if code == nn_mpi_success(), toldRank0 { code = MPI_Wait(&told, nn_mpi_status_ignore()) }
        if code == nn_mpi_success() {
            var answer: Int32 = toldRank0 ? 1 : 0
            code = MPI_Send(&answer, 1, nn_mpi_int(), 0, StandByTag.answer, comm)
        }
        guard code == nn_mpi_success() else {
            return StandByEnd(status: 2, problem: "rank \(worldRanks[rank]), standing by, lost rank 0: \(mpiErrorText(code))")
        }
        return StandByEnd(status: status.pointee)
    }

    /// On rank 0: whether a rank that stands by has asked to stop since the
    /// last call (its message is taken).
    public func standingByAskedToStop() -> Bool {
        var asked = false, found: Int32 = 0
        var status = MPI_Status()
        while MPI_Iprobe(nn_mpi_any_source(), StandByTag.stop, comm, &found, &status) == nn_mpi_success(), found != 0 {
            var flag: Int32 = 0
            guard MPI_Recv(&flag, 1, nn_mpi_int(), status.MPI_SOURCE, StandByTag.stop, comm, nn_mpi_status_ignore())
                    == nn_mpi_success() else { break }
            asked = true
        }
        return asked
    }

    /// On rank 0: ends the wait of the ranks `standingBy`, which exit with
    /// `status`, and waits for their answers (at most `timeout` seconds; nil:
    /// as long as it takes). Returns the ranks that did not answer.
    public func release(standingBy ranks: [Int], status: Int32, timeout: Double?) -> [Int] {
        let answers = UnsafeMutablePointer<Int32>.allocate(capacity: max(ranks.count, 1))
        answers.initialize(repeating: 0, count: max(ranks.count, 1))
        defer { answers.deallocate() }
        var requests = [MPI_Request?](repeating: nn_mpi_request_null(), count: ranks.count)
        var posted = [Bool](repeating: false, count: ranks.count)
        for (i, rank) in ranks.enumerated() {
            var value = status
            guard MPI_Send(&value, 1, nn_mpi_int(), Int32(rank), StandByTag.release, comm) == nn_mpi_success() else { continue }
            posted[i] = MPI_Irecv(answers + i, 1, nn_mpi_int(), Int32(rank), StandByTag.answer, comm, &requests[i]) == nn_mpi_success()
        }
        let started = MPI_Wtime()
        var answered = [Bool](repeating: false, count: ranks.count)
        while answered.contains(false) && (timeout.map { MPI_Wtime() - started < $0 } ?? true) {
            for i in ranks.indices where posted[i] && !answered[i] {
                var done: Int32 = 0
                if MPI_Test(&requests[i], &done, nn_mpi_status_ignore()) != nn_mpi_success() {
                    posted[i] = false
                } else if done != 0 {
                    answered[i] = true
                }
            }
            if !answered.contains(false) || !posted.contains(where: { $0 }) { break }
            var time = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&time, nil)
        }
        // Every stop message came before its rank's answer.
        _ = standingByAskedToStop()
        for i in ranks.indices where posted[i] && !answered[i] {
            MPI_Cancel(&requests[i])
            MPI_Request_free(&requests[i])
        }
        return ranks.indices.filter { !answered[$0] }.map { ranks[$0] }
    }

    /// The line for ranks that did not answer `release` within `timeout` seconds.
    public func unansweredRelease(_ ranks: [Int], timeout: Double) -> String {
        let names = ranks.map { "\($0) (host \(hostNames[$0]))" }.joined(separator: ", ")
        return "rank\(ranks.count == 1 ? "" : "s") \(names), standing by, did not answer rank 0 at the end of the run within --collective-timeout \(formatted(timeout)) s (stopped or cut off); stopping every rank"
    }
}
