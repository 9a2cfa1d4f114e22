// Real Open MPI jobs whose ranks stall or die: the watchdog ends them with a
// line naming the rank, the host and the step, and leaves no process behind.

import Foundation
import XCTest
import NNTraining

final class WatchdogTests: XCTestCase {
    /// A job long enough to be interrupted: the spiral preset for many epochs.
    func longJob(_ run: String, timeout: Double) -> [String] {
        ["-n", "2", "--oversubscribe", "--bind-to", "none", nntrainBinary, "train", "--preset", "spiral", "--epochs", "100000",
         "--run-dir", run, "--collective-timeout", String(timeout), "--no-report", "--no-tensorboard",
         // Both ranks train, however many cores the host has.
         "--stand-by", "off"]
    }

    /// Starts a long 2-rank job in `run`, waits until it has begun, sends
    /// `signal` to rank 1, and returns the job's outcome and the seconds from
    /// the signal to the job's end; afterwards no process of the job is left.
    func signalRankOne(_ signal: Int32, run: String, timeout: Double) throws -> (Outcome, Double) {
        let outcome = try startMpirun(longJob(run, timeout: timeout))
        XCTAssertTrue(waitUntil(60) { heartbeat(run) != nil && !Checkpoints.list(run).isEmpty }, "the job never began")
        let victim = try XCTUnwrap(rankPID(1, marker: run))
        let sent = Date()
        kill(victim, signal)
        let result = try XCTUnwrap(outcome())
        let seconds = Date().timeIntervalSince(sent)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertNotNil(step(in: result.stderr), "the step is named: \(result.stderr)")
        XCTAssertTrue(waitUntil(10) { processes(run).isEmpty }, "processes left: \(processes(run))")
        return (result, seconds)
    }

    /// The N of "of step N" in a message.
    func step(in message: String) -> Int? {
        guard let range = message.range(of: "of step ") else { return nil }
        return Int(message[range.upperBound...].prefix { $0.isNumber })
    }

    func testAStoppedRankEndsTheJobWithinTheTimeoutAndTheRunResumes() throws {
        let run = temporaryDirectory(self) + "/stopped"
        let (result, seconds) = try signalRankOne(SIGSTOP, run: run, timeout: 2)
        XCTAssertTrue(result.stderr.contains("has waited 2 s on rank 0 (--collective-timeout 2 s); rank 1 (host "), result.stderr)
        XCTAssertTrue(result.stderr.contains("did not answer"), result.stderr)
        // Timeout + the roll call + mpirun ending the job; the bound is timeout + 10 s.
        XCTAssertLessThan(seconds, 12, "the job ended \(seconds) s after the stop")
        let record = try XCTUnwrap(FileManager.default.contents(atPath: run + "/run.json"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: record) as? [String: Any])
        XCTAssertEqual(object["exit_reason"] as? String, "error")
        XCTAssertTrue((object["message"] as? String ?? "").contains("did not answer"), "\(object)")
        let beat = try XCTUnwrap(heartbeat(run))
        XCTAssertGreaterThan(beat.step, 0)
        XCTAssertLessThan(abs(beat.time - Date().timeIntervalSince1970), 60, "the heartbeat holds the time of the run")

        // Nothing half-done: the latest checkpoint reads, and the run resumes from it.
        let (snapshot, _) = try Checkpoints.latestValid(in: run) { XCTFail($0) }
        let resumed = try mpirun(2, ["train", "--run-dir", run, "--resume", "--epochs", String((snapshot.position?.epoch ?? 0) + 2),
                                     "--no-report", "--no-tensorboard"], timeout: 120)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }

    func testAKilledRankIsNamedBySurvivingRankZero() throws {
        let run = temporaryDirectory(self) + "/killed"
        let (result, seconds) = try signalRankOne(SIGKILL, run: run, timeout: 60)
        XCTAssertTrue(result.stderr.contains("rank 0: a rank was lost during the"), result.stderr)
        XCTAssertTrue(result.stderr.contains("rank 1 (host "), result.stderr)
        XCTAssertLessThan(seconds, 10, "the job ended \(seconds) s after the kill (long before the 60 s timeout)")
    }
}
