// Real Open MPI jobs: `mpirun -n N nntrain` against the single process.

import Foundation
import XCTest
import SafeTensors
import NNTraining

final class DistributedTests: XCTestCase {
    func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
    }

    func testWorldSizesTwoAndFourMatchOneProcess() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir)
        let single = try nntrain(["train", "--config", config, "--run-dir", dir + "/w1"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let reference = try modelParameters(dir + "/w1")
        for ranks in [2, 4] {
            let outcome = try mpirun(ranks, ["train", "--config", config, "--run-dir", dir + "/w\(ranks)"])
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertTrue(outcome.stdout.contains("identical on all \(ranks) ranks"), outcome.stdout)
            XCTAssertLessThan(maxRelativeDifference(try modelParameters(dir + "/w\(ranks)"), reference), 1e-5, "\(ranks) ranks")
            // Only rank 0 prints.
            XCTAssertEqual(outcome.stdout.components(separatedBy: "Epoch 1/").count - 1, 1, outcome.stdout)
        }
    }

    func testMpirunWithOneRankEqualsThePlainProcess() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 2)
        XCTAssertEqual(try nntrain(["train", "--config", config, "--run-dir", dir + "/plain"]).status, 0)
        let outcome = try mpirun(1, ["train", "--config", config, "--run-dir", dir + "/mpi1"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(try modelParameters(dir + "/mpi1"), try modelParameters(dir + "/plain"))
    }

    func testConfigurationMismatchStopsEveryRankQuickly() throws {
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir)
        // Open MPI's MPMD syntax: rank 0 and rank 1 get different epochs.
        let outcome = try runProcess(mpirun, ["--oversubscribe", "-n", "1", nntrainBinary, "train", "--config", config, "--epochs", "2",
                                       "--run-dir", dir + "/a", ":", "-n", "1", nntrainBinary, "train", "--config", config,
                                       "--epochs", "3", "--run-dir", dir + "/a"], timeout: 60)
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertLessThan(outcome.seconds, 30)
        XCTAssertTrue(outcome.stderr.contains("configuration mismatch: rank 1"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("rank 0:") && outcome.stderr.contains("rank 1:"), "every rank says it: \(outcome.stderr)")
    }

    func testDatasetNotDivisibleByWorldSizeTrains() throws {
        let dir = temporaryDirectory(self)
        // 200 · 0.75 = 150 training samples, batch 12 over 3 ranks: the last
        // global batch has 6 samples, 2 per rank; with 7 ranks some ranks
        // get none in a step and still take part.
        let config = smallConfig(in: dir, samples: 200, batch: 12, epochs: 2)
        let outcome = try mpirun(3, ["train", "--config", config, "--run-dir", dir + "/r3"], timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let odd = try mpirun(4, ["train", "--config", smallConfig(in: dir, samples: 203, batch: 8, epochs: 1), "--run-dir", dir + "/r4"],
                             timeout: 120)
        XCTAssertEqual(odd.status, 0, odd.stderr)
    }

    func testNonFiniteGradientsStopEveryRankAtTheSameStep() throws {
        let dir = temporaryDirectory(self)
        let config = divergingConfig(in: dir)
        for ranks in [1, 2] {
            let outcome = try mpirun(ranks, ["train", "--config", config, "--run-dir", dir + "/r\(ranks)"], timeout: 60)
            XCTAssertEqual(outcome.status, 2, outcome.stderr)
            let lines = outcome.stderr.split(separator: "\n").filter { $0.contains("nntrain: error:") }
            XCTAssertEqual(lines.count, 1, outcome.stderr)
            XCTAssertTrue(lines.first?.contains("step 3 (epoch 1)") == true && lines.first?.contains("NaN, infinite or too large to square") == true,
                          outcome.stderr)
        }
    }

    func testEarlyStoppingStopsEveryRankAtOneEpochWithTheBestWeights() throws {
        let dir = temporaryDirectory(self)
        let arguments = ["train", "--preset", "spiral", "--epochs", "300", "--patience", "4", "--restore-best-weights",
                         "--no-report", "--no-tensorboard"]
        let one = try nntrain(arguments + ["--run-dir", dir + "/r1"], timeout: 120)
        let two = try mpirun(2, arguments + ["--run-dir", dir + "/r2"], timeout: 120)
        for (name, outcome) in [("1 process", one), ("2 ranks", two)] {
            XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.stderr)")
            let stops = outcome.stdout.split(separator: "\n").filter { $0.contains("early stopping") }
            XCTAssertEqual(stops.count, 1, "\(name): rank 0 alone says it, once\n\(outcome.stdout)")
        }
        XCTAssertTrue(two.stdout.contains("identical on all 2 ranks"), two.stdout)
        for run in ["r1", "r2"] {
            let results = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(run)/results.json"))) as? [String: Any])
            let stop = try XCTUnwrap(results["early_stopping"] as? [String: Any], run)
            let stopped = try XCTUnwrap(stop["stopped_epoch"] as? Int), best = try XCTUnwrap(stop["best_epoch"] as? Int)
            XCTAssertEqual(stopped - best, 4, run)
            XCTAssertEqual(metricsLines("\(dir)/\(run)").count, stopped, run)
            let best0 = try SafeTensors.read(path: "\(dir)/\(run)/best.safetensors").tensors.sorted { $0.name < $1.name }.flatMap(\.values)
            XCTAssertEqual(try modelParameters("\(dir)/\(run)"), best0, "\(run): the final model is the best epoch's")
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(run)/run.json"))) as? [String: Any])
            XCTAssertEqual(record["exit_reason"] as? String, "early_stopped", run)
        }
    }

    func testBatchThatDoesNotDivideOverRanksIsRejected() throws {
        let dir = temporaryDirectory(self)
        let outcome = try mpirun(4, ["train", "--config", smallConfig(in: dir, batch: 10), "--run-dir", dir + "/x"], timeout: 60)
        XCTAssertEqual(outcome.status, 2, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("training.batch_size: 10 is the global batch and must divide evenly over 4 ranks"), outcome.stderr)
    }
}

/// Ranks on distinct hosts: network namespaces joined by veth pairs, TCP
/// between their addresses, launched through an rsh agent.
final class MultiHostTests: XCTestCase {
    func testTrainingAcrossNetworkNamespaces() throws {
        guard getuid() == 0 else { throw XCTSkip("creating network namespaces needs root") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else {
            throw XCTSkip("iproute2 (ip) is not installed")
        }
        guard mpirunPath != nil else { throw XCTSkip("mpirun is not installed") }
        let outcome = try runProcess("/bin/bash", [packageRoot + "/scripts/multihost-netns", "2", "--", "train", "--preset", "spiral",
                                                   "--epochs", "5"],
                                     environment: ["NNTRAIN_BINARY": nntrainBinary], timeout: 180)
        XCTAssertEqual(outcome.status, 0, outcome.stdout + outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("rank 0 runs at 10.213.77.1/24"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("rank 1 runs at 10.213.77.2/24"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("relative difference to a single process"), outcome.stdout)
    }
}
