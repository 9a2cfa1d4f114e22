// More ranks than cores on one host: rank 0 says so, run.json records it,
// neither oversubscription nor the yielding wait changes a single bit, and
// with one rank per core training the others stand by: the job trains as
// the ranks that train would, a signal to a rank that stands by stops it,
// and a failure releases every rank with the job's status.

import Foundation
import XCTest
import NNTraining

final class OversubscriptionTests: XCTestCase {
    /// `mpirun -n ranks` started under `taskset -c cpus`, so that the host
    /// looks as small as the CPU list whatever this machine has.
    func mpirun(_ ranks: Int, onCPUs cpus: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else { throw XCTSkip("taskset is not installed") }
        return try runProcess("/usr/bin/taskset", ["-c", cpus, mpirun, "-n", String(ranks), "--oversubscribe", "--bind-to", "none",
                                                   nntrainBinary] + arguments, environment: environment, timeout: 120)
    }

    func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any], path)
    }

    func testMoreRanksThanCoresIsSaidOnceAndRecorded() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 1)
        let outcome = try mpirun(3, onCPUs: "0", ["train", "--config", config, "--run-dir", dir + "/r"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let lines = outcome.stdout.split(separator: "\n").filter { $0.hasPrefix("this host is oversubscribed") }
        XCTAssertEqual(lines, ["this host is oversubscribed: 3 ranks on 1 core; waiting ranks yield their core and BLAS runs 1 thread per rank"],
                       "rank 0 alone says it, once:\n\(outcome.stdout)")
        XCTAssertTrue(outcome.stdout.contains("compute: cpu (OpenBLAS, 1 thread) per rank"), outcome.stdout)
        let record = try json(dir + "/r/run.json")
        XCTAssertEqual(record["oversubscribed"] as? Bool, true)
        XCTAssertEqual(record["local_ranks"] as? Int, 3)
        XCTAssertEqual(record["host_cores"] as? Int, 1)
        XCTAssertEqual(record["blas_threads"] as? Int, 1)
    }

    func testAsManyRanksAsCoresIsNotOversubscribedBoundOrNot() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 1)
        let unbound = try mpirun(2, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/unbound"])
        // Open MPI binds a 2-rank job to one core per rank: each sees 1 core, the host has 2.
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        let bound = try runProcess(mpirun, ["-n", "2", nntrainBinary, "train", "--config", config, "--run-dir", dir + "/bound"],
                                   timeout: 120)
        for (name, outcome) in [("unbound", unbound), ("bound", bound)] {
            XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.stderr)")
            XCTAssertFalse(outcome.stdout.contains("oversubscribed"), "\(name): \(outcome.stdout)")
            let record = try json("\(dir)/\(name)/run.json")
            XCTAssertEqual(record["oversubscribed"] as? Bool, false, name)
            XCTAssertEqual(record["local_ranks"] as? Int, 2, name)
            XCTAssertGreaterThanOrEqual(record["host_cores"] as? Int ?? 0, 2, name)
        }
    }

    func testTheYieldingWaitChangesNoBit() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir)
        // The same 2 ranks: on one core waiting in the yielding barrier, and
        // on two in MPI's blocking call.
        // (Every rank trains: standing by would make the one-core runs one
        // rank's sums.)
        let yielding = try mpirun(2, onCPUs: "0", ["train", "--config", config, "--run-dir", dir + "/yielding", "--stand-by", "off"],
                                  environment: ["NNTRAIN_COLLECTIVE_WAIT": "yielding"])
        let blocking = try mpirun(2, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/blocking"])
        let plain = try mpirun(2, onCPUs: "0", ["train", "--config", config, "--run-dir", dir + "/plain", "--stand-by", "off"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertEqual(try modelParameters(dir + "/plain"), try modelParameters(dir + "/blocking"), "oversubscribed, blocking")
        for (name, outcome) in [("yielding", yielding), ("blocking", blocking)] {
            XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.stderr)")
            XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), "\(name): \(outcome.stdout)")
        }
        XCTAssertEqual(try json(dir + "/yielding/run.json")["oversubscribed"] as? Bool, true)
        XCTAssertEqual(try json(dir + "/blocking/run.json")["oversubscribed"] as? Bool, false)
        XCTAssertEqual(try json(dir + "/yielding/results.json")["parameter_checksum"] as? String,
                       try json(dir + "/blocking/results.json")["parameter_checksum"] as? String)
        XCTAssertEqual(try modelParameters(dir + "/yielding"), try modelParameters(dir + "/blocking"))
        XCTAssertEqual(metricsLines(dir + "/yielding").map { $0["loss"] as? Double }, metricsLines(dir + "/blocking").map { $0["loss"] as? Double })
    }

    /// Four ranks on two cores: ranks 0 and 1 train, 2 and 3 stand by, and
    /// the model is bit for bit the one two ranks on the same cores train;
    /// run.json records who stood by.
    func testFourRanksOnTwoCoresTrainAsTwoWithTwoStandingBy() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir)
        let four = try mpirun(4, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/four"])
        let two = try mpirun(2, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/two"])
        let everyRank = try mpirun(4, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/every", "--stand-by", "off"])
        for (name, outcome) in [("four", four), ("two", two), ("every", everyRank)] { XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.stderr)") }
        XCTAssertTrue(four.stdout.contains("one rank per core trains: ranks 0 and 1 train, ranks 2 and 3 stand by"), four.stdout)
        XCTAssertTrue(four.stdout.contains(", 2 ranks of 4; gradients:"), four.stdout)
        XCTAssertTrue(four.stdout.contains("identical on all 2 ranks that trained (2 stood by)"), four.stdout)
        XCTAssertFalse(two.stdout.contains("stand by"), two.stdout)
        XCTAssertFalse(everyRank.stdout.contains("stand by"), everyRank.stdout)
        XCTAssertTrue(everyRank.stdout.contains("identical on all 4 ranks"), everyRank.stdout)
        let record = try json(dir + "/four/run.json")
        XCTAssertEqual(record["standing_by"] as? [Int], [2, 3])
        XCTAssertEqual(record["world_size"] as? Int, 2)
        XCTAssertEqual(record["local_ranks"] as? Int, 4, "the host's load counts every rank")
        XCTAssertTrue(try json(dir + "/two/run.json")["standing_by"] is NSNull)
        XCTAssertTrue(try json(dir + "/every/run.json")["standing_by"] is NSNull)
        XCTAssertEqual(try json(dir + "/four/results.json")["parameter_checksum"] as? String,
                       try json(dir + "/two/results.json")["parameter_checksum"] as? String)
        XCTAssertEqual(try modelParameters(dir + "/four"), try modelParameters(dir + "/two"))
        // Every rank training sums four slices: another model.
        XCTAssertNotEqual(try modelParameters(dir + "/every"), try modelParameters(dir + "/two"))
    }

    /// SIGTERM to a rank that stands by (and to it alone) stops the job at
    /// a step boundary with a checkpoint, as a signal to every rank would;
    /// the run then resumes. While it trains, the ranks that stand by use
    /// almost no CPU.
    func testASignalToARankStandingByStopsTheJobAndItSleepsMeanwhile() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let run = temporaryDirectory(self) + "/stopped"
        let outcome = try startMpirun(["-n", "4", "--oversubscribe", "--bind-to", "none", nntrainBinary, "train", "--preset", "spiral",
                                       "--epochs", "100000", "--run-dir", run, "--no-report", "--no-tensorboard"], onCPUs: "0,1")
        XCTAssertTrue(waitUntil(60) { heartbeat(run) != nil && !Checkpoints.list(run).isEmpty }, "the job never began")
        let standing = try XCTUnwrap(rankPID(3, marker: run)), training = try XCTUnwrap(rankPID(1, marker: run))
        let before = (cpuSeconds(standing), cpuSeconds(training))
        usleep(2_000_000)
        let standingCPU = try XCTUnwrap(cpuSeconds(standing)) - XCTUnwrap(before.0)
        let trainingCPU = try XCTUnwrap(cpuSeconds(training)) - XCTUnwrap(before.1)
        XCTAssertLessThan(standingCPU, 0.2, "a rank standing by used \(standingCPU) s of CPU in 2 s")
        XCTAssertGreaterThan(trainingCPU, 0.5, "a training rank used \(trainingCPU) s of CPU in 2 s")
        kill(standing, SIGTERM)
        let result = try XCTUnwrap(outcome())
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("stopped by signal"), result.stdout)
        XCTAssertTrue(result.stdout.contains("Resume with: mpirun -n 4 nntrain train --run-dir \(run) --resume"), result.stdout)
        XCTAssertEqual(try json(run + "/run.json")["exit_reason"] as? String, "stopped")
        XCTAssertTrue(waitUntil(10) { processes(run).isEmpty }, "processes left: \(processes(run))")
        let (snapshot, _) = try Checkpoints.latestValid(in: run) { XCTFail($0) }
        let epochs = String((snapshot.position?.epoch ?? 0) + 2)
        let resumed = try mpirun(4, onCPUs: "0,1", ["train", "--run-dir", run, "--resume", "--epochs", epochs, "--no-report", "--no-tensorboard"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("ranks 2 and 3 stand by"), resumed.stdout)
    }

    /// A run that fails after the ranks have split (NaN from a learning
    /// rate far too large) ends every rank, those standing by with the
    /// job's exit status 2, and leaves no process behind.
    func testAFailureReleasesTheRanksStandingByWithItsStatus() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir)
        let run = dir + "/failed"
        let outcome = try mpirun(4, onCPUs: "0,1", ["train", "--config", config, "--run-dir", run, "--learning-rate", "1e30"])
        XCTAssertEqual(outcome.status, 2, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("stand by"), outcome.stdout)
        XCTAssertTrue(outcome.stderr.contains("NaN"), outcome.stderr)
        XCTAssertEqual(try json(run + "/run.json")["exit_reason"] as? String, "error")
        XCTAssertTrue(processes(run).isEmpty, "processes left: \(processes(run))")
    }
}

extension OversubscriptionTests {
    /// A rank that stands by and cannot answer at the end (SIGSTOP) does
    /// not leave the job waiting in MPI_Finalize: rank 0 waits
    /// --collective-timeout for its answer, names it, and ends the job.
    func testARankStandingByThatCannotAnswerIsNamedAndTheJobEnds() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let run = temporaryDirectory(self) + "/silent"
        let outcome = try startMpirun(["-n", "4", "--oversubscribe", "--bind-to", "none", nntrainBinary, "train", "--preset", "spiral",
                                       "--epochs", "40", "--run-dir", run, "--collective-timeout", "2", "--no-report", "--no-tensorboard"],
                                      onCPUs: "0,1")
        XCTAssertTrue(waitUntil(60) { heartbeat(run) != nil }, "the job never began")
        let standing = try XCTUnwrap(rankPID(3, marker: run))
        kill(standing, SIGSTOP)
        let result = try XCTUnwrap(outcome())
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stdout.contains("saved \(run)/model.safetensors"), "training finished: \(result.stdout)")
        XCTAssertTrue(result.stderr.contains("rank 3 (host "), result.stderr)
        XCTAssertTrue(result.stderr.contains("standing by, did not answer rank 0 at the end of the run within --collective-timeout 2 s"), result.stderr)
        XCTAssertTrue(waitUntil(15) { processes(run).isEmpty }, "processes left: \(processes(run))")
    }
}

/// User and system CPU seconds process `pid` has used (nil: gone).
func cpuSeconds(_ pid: pid_t) -> Double? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
    let text = String(decoding: data, as: UTF8.self)
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    guard let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
