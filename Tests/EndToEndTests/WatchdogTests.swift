// Real Open MPI jobs whose ranks stall or die: the watchdog ends them with a
// line naming the rank, the host and the step, and leaves no process behind.

import Foundation
import XCTest
import NNTraining

final class WatchdogTests: XCTestCase {
    /// A job long enough to be interrupted: the spiral preset for many epochs.
    func longJob(_ run: String, timeout: Double) -> [String] {
        ["-n", "2", "--oversubscribe", "--bind-to", "none", nntrainBinary, "train", "--preset", "spiral", "--epochs", "100000",
         "--run-dir", run, "--collective-timeout", String(timeout), "--no-report", "--no-tensorboard"]
    }

    /// Starts `mpirun arguments` in the background; returns a wait for its outcome.
    func start(_ arguments: [String]) throws -> () -> Outcome? {
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        final class Box: @unchecked Sendable { var outcome: Outcome? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            box.outcome = try? runProcess(mpirun, arguments, timeout: 120)
            done.signal()
        }
        return {
            done.wait()
            return box.outcome
        }
    }

    /// The PID of `rank` among the nntrain processes whose command line holds `marker`.
    func rankPID(_ rank: Int, marker: String) -> pid_t? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in names {
            guard let pid = pid_t(name),
                  let command = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
                  String(decoding: command, as: UTF8.self).contains(marker),
                  String(decoding: command, as: UTF8.self).hasPrefix(nntrainBinary),
                  let environment = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
            let variables = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }

    /// Processes (mpirun and ranks) whose command line holds `marker`.
    func processes(_ marker: String) -> [pid_t] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { name in
            guard let pid = pid_t(name), pid != getpid(),
                  let command = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
                  String(decoding: command, as: UTF8.self).contains(marker) else { return nil }
            return pid
        }
    }

    /// Waits until `condition` holds, at most `seconds`.
    func wait(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let start = Date()
        while !condition() {
            if Date().timeIntervalSince(start) > seconds { return false }
            usleep(20_000)
        }
        return true
    }

    /// The heartbeat rank 0 keeps: its global step and time.
    func heartbeat(_ run: String) -> (step: Int, time: Double)? {
        guard let data = FileManager.default.contents(atPath: run + "/heartbeat.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let step = object["global_step"] as? Int, let time = object["unix_time"] as? Double else { return nil }
        return (step, time)
    }

    /// Starts a long 2-rank job in `run`, waits until it has begun, sends
    /// `signal` to rank 1, and returns the job's outcome and the seconds from
    /// the signal to the job's end; afterwards no process of the job is left.
    func signalRankOne(_ signal: Int32, run: String, timeout: Double) throws -> (Outcome, Double) {
        let outcome = try start(longJob(run, timeout: timeout))
        XCTAssertTrue(wait(60) { self.heartbeat(run) != nil && !Checkpoints.list(run).isEmpty }, "the job never began")
        let victim = try XCTUnwrap(rankPID(1, marker: run))
        let sent = Date()
        kill(victim, signal)
        let result = try XCTUnwrap(outcome())
        let seconds = Date().timeIntervalSince(sent)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertNotNil(step(in: result.stderr), "the step is named: \(result.stderr)")
        XCTAssertTrue(wait(10) { self.processes(run).isEmpty }, "processes left: \(processes(run))")
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
