// More ranks than cores on one host: rank 0 says so, run.json records it,
// neither oversubscription nor the yielding wait changes a single bit, and
// ranks in compute groups train as one rank a group.

import Foundation
import XCTest

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
        // (Each rank computes its own slice: compute groups would make the
        // one-core runs one rank's sums.)
        let yielding = try mpirun(2, onCPUs: "0", ["train", "--config", config, "--run-dir", dir + "/yielding", "--compute-groups", "off"],
                                  environment: ["NNTRAIN_COLLECTIVE_WAIT": "yielding"])
        let blocking = try mpirun(2, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/blocking"])
        let plain = try mpirun(2, onCPUs: "0", ["train", "--config", config, "--run-dir", dir + "/plain", "--compute-groups", "off"])
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

    /// Four ranks on two cores form two compute groups and train bit for
    /// bit as two ranks on the same cores; run.json records the groups.
    func testFourRanksOnTwoCoresTrainAsTwoInComputeGroups() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 cores") }
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir)
        let four = try mpirun(4, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/four"])
        let two = try mpirun(2, onCPUs: "0,1", ["train", "--config", config, "--run-dir", dir + "/two"])
        XCTAssertEqual(four.status, 0, four.stderr)
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(four.stdout.contains("compute groups, one per core: rank 0 for ranks 0–1, rank 2 for ranks 2–3"), four.stdout)
        XCTAssertTrue(four.stdout.contains("identical on all 4 ranks"), four.stdout)
        XCTAssertFalse(two.stdout.contains("compute groups"), two.stdout)
        XCTAssertEqual(try json(dir + "/four/run.json")["compute_groups"] as? [[Int]], [[0, 1], [2, 3]])
        XCTAssertTrue(try json(dir + "/two/run.json")["compute_groups"] is NSNull)
        XCTAssertEqual(try json(dir + "/four/results.json")["parameter_checksum"] as? String,
                       try json(dir + "/two/results.json")["parameter_checksum"] as? String)
        XCTAssertEqual(try modelParameters(dir + "/four"), try modelParameters(dir + "/two"))
    }
}
