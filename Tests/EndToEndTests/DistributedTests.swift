// Real Open MPI jobs: `mpirun -n N nntrain` against the single process.

import Foundation
import XCTest
import NNDistributed
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
            // Every rank trains, however many cores there are.
            let outcome = try mpirun(ranks, ["train", "--config", config, "--run-dir", dir + "/w\(ranks)", "--stand-by", "off"])
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertTrue(outcome.stdout.contains("identical on all \(ranks) ranks"), outcome.stdout)
            XCTAssertLessThan(maxRelativeDifference(try modelParameters(dir + "/w\(ranks)"), reference), 1e-5, "\(ranks) ranks")
            // Only rank 0 prints.
            XCTAssertEqual(outcome.stdout.components(separatedBy: "Epoch 1/").count - 1, 1, outcome.stdout)
        }
    }

    /// The ranks of a host map one cache file of the prepared data; a
    /// second run finds it; the model is the one of ranks that load their own.
    func testRanksOnAHostShareOneMappedCopyOfTheData() throws {
        let directory = try fashionMNISTDirectory()
        let dir = temporaryDirectory(self)
        let config = write("""
            data:
              train: {format: idx, images: \(directory)/train-images-idx3-ubyte.gz, labels: \(directory)/train-labels-idx1-ubyte.gz, limit: 2000}
              test: {format: idx, images: \(directory)/t10k-images-idx3-ubyte.gz, labels: \(directory)/t10k-labels-idx1-ubyte.gz, limit: 500}
              validation_split: 0.1
              scale: standardize
            model:
              layers:
                - dense: {units: 32, activation: relu}
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            training: {epochs: 2, batch_size: 64, seed: 5}
            """, "fm.yaml", in: dir)
        let cache = dir + "/cache"
        func cacheFiles() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: cache).sorted() }
        let shared = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/shared", "--data-cache", cache])
        XCTAssertEqual(shared.status, 0, shared.stderr)
        XCTAssertTrue(shared.stdout.contains("784 features; mapped from the data cache, one copy for the 2 ranks on this host"), shared.stdout)
        let files = try cacheFiles()
        XCTAssertEqual(files.count, 1, "\(files)")
        XCTAssertTrue(files.first?.hasSuffix(".nndata") == true, "\(files)")
        let again = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/again", "--data-cache", cache])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try cacheFiles(), files)
        let own = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/own", "--data-cache", "none"])
        XCTAssertEqual(own.status, 0, own.stderr)
        XCTAssertFalse(own.stdout.contains("data cache"), own.stdout)
        let reference = try modelParameters(dir + "/own")
        XCTAssertEqual(try modelParameters(dir + "/shared"), reference)
        XCTAssertEqual(try modelParameters(dir + "/again"), reference)
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
        // Every rank trains its own slice, however many cores the host has.
        let config = smallConfig(in: dir, samples: 200, batch: 12, epochs: 2)
        let outcome = try mpirun(3, ["train", "--config", config, "--run-dir", dir + "/r3", "--stand-by", "off"], timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let odd = try mpirun(4, ["train", "--config", smallConfig(in: dir, samples: 203, batch: 8, epochs: 1), "--run-dir", dir + "/r4",
                                 "--stand-by", "off"], timeout: 120)
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

    func testAnUpdateThatOverflowsStopsWithExit2AndNothingNonFiniteSaved() throws {
        let dir = temporaryDirectory(self)
        // Decoupled weight decay η·λ = 10⁹: the weights overflow in the update.
        let config = write("""
            data:
              train: {format: synthetic, name: spiral, samples: 40, noise: 0.1, seed: 1}
            model:
              layers:
                - dense: {units: 8, activation: tanh}
                - dense: {units: 2, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adamw, learning_rate: 1000, weight_decay: 1000000}
            training: {epochs: 5, batch_size: 4, seed: 1}
            """, "overflow.yaml", in: dir)
        for ranks in [1, 2] {
            let run = dir + "/r\(ranks)"
            let outcome = try mpirun(ranks, ["train", "--config", config, "--run-dir", run, "--checkpoint-every", "1"], timeout: 60)
            XCTAssertEqual(outcome.status, 2, outcome.stderr)
            let lines = outcome.stderr.split(separator: "\n").filter { $0.contains("nntrain: error:") }
            XCTAssertEqual(lines.count, 1, outcome.stderr)
            XCTAssertTrue(lines.first?.contains("the update made") == true && lines.first?.contains("layers.0.weight") == true,
                          outcome.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/model.safetensors"), "no final model")
            let (latest, _) = try Checkpoints.latestValid(in: run) { XCTFail($0) }
            XCTAssertTrue(latest.parameters.allSatisfy(\.isFinite) && latest.optimizerState.allSatisfy(\.isFinite))
            let line = String(lines.first ?? "")
            let digits = line.range(of: "step ").map { line[$0.upperBound...].prefix { $0.isNumber } } ?? ""
            XCTAssertEqual(latest.position?.globalStep, Int(digits).map { $0 - 1 }, "latest is the step before the bad one")
            // Resuming with a rate that tames the decay (η·λ = 0.1) continues from it and finishes.
            let resumed = try mpirun(ranks, ["train", "--run-dir", run, "--resume", "--learning-rate", "0.0000001"], timeout: 60)
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
        }
    }

    func testSkippedStepsOnTwoRanksAreCountedInTheMetrics() throws {
        let dir = temporaryDirectory(self)
        // One row of 97 holds a feature of 10³⁰: the one batch an epoch that
        // holds it has infinite gradients, and is skipped.
        var rows = ["a,b,y"]
        for i in 0..<97 { rows.append(i == 41 ? "1e30,1,0.5" : "\(Float(i % 7) / 7),\(Float(i % 5) / 5),\(Float(i % 3) / 3)") }
        let data = write(rows.joined(separator: "\n") + "\n", "spiked.csv", in: dir)
        let config = write("""
            task: regression
            data:
              train: {format: csv, path: \(data), label: y}
              scale: none
            model:
              layers:
                - dense: {units: 1}
            loss: mse
            optimizer: {name: sgd, learning_rate: 0.05}
            training: {epochs: 3, batch_size: 12, seed: 7}
            """, "spiked.yaml", in: dir)
        let stopped = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/stop"], timeout: 60)
        XCTAssertEqual(stopped.status, 2, "without --on-nonfinite skip the bad step stops the run: \(stopped.stderr)")
        let outcome = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/skip", "--on-nonfinite", "skip"], timeout: 60)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)
        XCTAssertEqual(metricsLines(dir + "/skip").map { $0["skipped_steps"] as? Int }, [1, 1, 1])
        XCTAssertTrue(try modelParameters(dir + "/skip").allSatisfy(\.isFinite))
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
        // Every rank trains, however many cores the host has.
        let outcome = try mpirun(4, ["train", "--config", smallConfig(in: dir, batch: 10), "--run-dir", dir + "/x", "--stand-by", "off"],
                                 timeout: 60)
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
        // Hosts share no memory: Open MPI's algorithms only, and the shared sum, named, says why it cannot apply.
        XCTAssertTrue(outcome.stdout.contains("allreduce: measured on "), outcome.stdout)
        XCTAssertFalse(outcome.stdout.contains("shared memory"), outcome.stdout)
        let named = try runProcess("/bin/bash", [packageRoot + "/scripts/multihost-netns", "2", "--", "train", "--preset", "spiral",
                                                 "--epochs", "1", "--allreduce-algorithm", "shared-memory"],
                                   environment: ["NNTRAIN_BINARY": nntrainBinary], timeout: 180)
        XCTAssertEqual(named.status, 0, named.stdout + named.stderr)
        XCTAssertTrue(named.stdout.contains("allreduce: Open MPI's decision rules (--allreduce-algorithm shared-memory: the ranks are on several hosts, so they share no memory), not measured"),
                      named.stdout)
    }
}

/// The gradients' allreduce algorithm: measured at start-up, or named.
final class AllreduceAlgorithmTests: XCTestCase {
    static let names = ["basic linear", "nonoverlapping", "recursive doubling", "ring", "segmented ring", "rabenseifner",
                        "shared memory"]

    func allreduceLines(_ outcome: Outcome) -> [String] {
        outcome.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("allreduce: ") }
    }

    func allreduceRecord(_ runDirectory: String) throws -> [String: Any] {
        let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDirectory + "/run.json"))) as? [String: Any])
        return try XCTUnwrap(run["allreduce"] as? [String: Any], "run.json's allreduce")
    }

    func testStartUpTimesEveryAlgorithmAndRecordsTheChoice() throws {
        let dir = temporaryDirectory(self)
        let outcome = try mpirun(2, ["train", "--config", smallConfig(in: dir, epochs: 1), "--run-dir", dir + "/r"], timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let lines = allreduceLines(outcome)
        XCTAssertEqual(lines.count, 1, outcome.stdout)
        let line = lines.first ?? ""
        XCTAssertNotNil(line.range(of: "^allreduce: measured on [0-9,]+ floats × 2 ranks: ", options: .regularExpression), line)
        for name in Self.names {
            XCTAssertNotNil(line.range(of: "\(name) [0-9,]+ µs", options: .regularExpression), "\(name) has a time: \(line)")
        }
        let chosen = try XCTUnwrap(line.range(of: " → ").map { line[$0.upperBound...].prefix { $0 != "(" } }).trimmingCharacters(in: .whitespaces)
        XCTAssertTrue(Self.names.contains(chosen), line)
        XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)

        let record = try allreduceRecord(dir + "/r")
        XCTAssertEqual(record["source"] as? String, "measured")
        XCTAssertEqual(record["name"] as? String, chosen)
        let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/r/run.json"))) as? [String: Any])
        XCTAssertEqual(record["floats"] as? Int, run["parameter_count"] as? Int, "timed on the gradients' size")
        let timings = try XCTUnwrap(record["timings"] as? [[String: Any]])
        XCTAssertEqual(timings.compactMap { $0["algorithm"] as? Int }, [1, 2, 3, 4, 5, 6, 101], "with the shared-memory sum on one host")
        XCTAssertTrue(timings.allSatisfy { ($0["mean_us"] as? Double).map { $0 > 0 } == true && ($0["iterations"] as? Int ?? 0) >= 3 }, "\(timings)")
        let fastest = timings.min { ($0["mean_us"] as? Double ?? .infinity) < ($1["mean_us"] as? Double ?? .infinity) }
        XCTAssertEqual(fastest?["algorithm"] as? Int, record["algorithm"] as? Int)
    }

    func testANamedAlgorithmOrTheEnvironmentSkipsTheMeasurement() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 1)
        let cases: [(arguments: [String], environment: [String: String], line: String, source: String)] = [
            (["--allreduce-algorithm", "ring"], [:], "allreduce: ring (--allreduce-algorithm ring), not measured", "flag"),
            ([], ["OMPI_MCA_coll_tuned_allreduce_algorithm": "3"],
             "allreduce: recursive doubling (OMPI_MCA_coll_tuned_allreduce_algorithm=3), not measured", "environment"),
            ([], ["NNTRAIN_ALLREDUCE": "default"], "allreduce: Open MPI's decision rules (NNTRAIN_ALLREDUCE=default), not measured", "open_mpi"),
        ]
        for (n, item) in cases.enumerated() {
            let run = dir + "/r\(n)"
            let outcome = try mpirun(2, ["train", "--config", config, "--run-dir", run] + item.arguments,
                                     environment: item.environment, timeout: 120)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertEqual(allreduceLines(outcome), [item.line], outcome.stdout)
            XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)
            let record = try allreduceRecord(run)
            XCTAssertEqual(record["source"] as? String, item.source)
            XCTAssertNil(record["timings"], "nothing measured")
        }
    }

    /// The algorithm's name as the flag takes it.
    func flagName(_ number: Int) -> String {
        AllreduceTuning.name(number).replacingOccurrences(of: " ", with: "-")
    }

    /// The shared-memory sum: with two ranks one addition, so Open MPI's
    /// ring gives the same model; with three, every element is added in
    /// rank order by one rank, so the sharded update (reduce-scatter and
    /// all-gather through the shared buffers) gives the whole update's bits,
    /// and the model stays close to one process's. Across hosts it cannot
    /// apply, and says so.
    func testTheSharedMemorySumAddsAsTheOthersDo() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 2)
        func train(_ ranks: Int, _ name: String, _ arguments: [String]) throws -> Outcome {
            let outcome = try mpirun(ranks, ["train", "--config", config, "--run-dir", dir + "/" + name, "--stand-by", "off"] + arguments,
                                     timeout: 180)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertTrue(outcome.stdout.contains("identical on all \(ranks) ranks"), outcome.stdout)
            return outcome
        }
        let shared = try train(2, "shared", ["--allreduce-algorithm", "shared-memory"])
        XCTAssertEqual(allreduceLines(shared), ["allreduce: shared memory (--allreduce-algorithm shared-memory), not measured"], shared.stdout)
        XCTAssertEqual(try allreduceRecord(dir + "/shared")["algorithm"] as? Int, AllreduceTuning.sharedMemory)
        _ = try train(2, "ring", ["--allreduce-algorithm", "ring"])
        XCTAssertEqual(try modelParameters(dir + "/shared"), try modelParameters(dir + "/ring"), "one addition commutes")

        _ = try train(3, "whole", ["--allreduce-algorithm", "shared-memory", "--shard-optimizer", "off"])
        let sharded = try train(3, "sharded", ["--allreduce-algorithm", "shared-memory", "--shard-optimizer", "on"])
        XCTAssertTrue(sharded.stdout.contains("gradients: reduce-scatter, each rank updates 1/3 of the parameters, all-gather"), sharded.stdout)
        let whole = try modelParameters(dir + "/whole")
        XCTAssertEqual(whole, try modelParameters(dir + "/sharded"), "every element added in one order")
        let one = try nntrain(["train", "--config", config, "--run-dir", dir + "/one"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let reference = try modelParameters(dir + "/one")
        XCTAssertEqual(whole.count, reference.count)
        let largest = zip(whole, reference).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? .infinity
        XCTAssertLessThan(largest, 1e-4, "three ranks' sums are the batch's, up to rounding")
    }

    /// Where Open MPI cannot back a shared window (it would hang, not
    /// fail), the sum is not offered and the run trains on Open MPI's.
    func testWithoutRoomForSharedMemoryTheSumStaysOpenMPIs() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 1)
        let environment = ["OMPI_MCA_osc_sm_backing_directory": dir + "/missing"]
        let measured = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/auto"], environment: environment, timeout: 120)
        XCTAssertEqual(measured.status, 0, measured.stderr)
        let line = allreduceLines(measured).first ?? ""
        XCTAssertTrue(line.hasPrefix("allreduce: measured on ") && line.contains("rabenseifner"), measured.stdout)
        XCTAssertFalse(line.contains("shared memory"), line)
        let named = try mpirun(2, ["train", "--config", config, "--run-dir", dir + "/named", "--allreduce-algorithm", "shared-memory"],
                               environment: environment, timeout: 120)
        XCTAssertEqual(named.status, 0, named.stderr)
        XCTAssertEqual(allreduceLines(named), ["allreduce: Open MPI's decision rules (--allreduce-algorithm shared-memory: the gradients are not in shared memory: a rank is on a GPU, or \(dir)/missing has no room for them), not measured"],
                       named.stdout)
        XCTAssertTrue(named.stdout.contains("identical on all 2 ranks"), named.stdout)
    }

    func testAnUnknownAlgorithmExitsWith2AndOneLine() throws {
        let outcome = try nntrain(["train", "--preset", "spiral", "--allreduce-algorithm", "fastest"])
        assertUserError(outcome, contains: ["--allreduce-algorithm: unknown algorithm 'fastest'; choose auto, default, 1-6 or one of basic-linear,"])
    }

    /// With 4 ranks the algorithms add in different orders, so the bits show
    /// which one summed: the measured choice sums exactly as the same
    /// algorithm named on the command line, another family differs, and a
    /// resumed run reuses the measured algorithm.
    /// (Every rank computes its own slice: on fewer than 4 cores compute
    /// groups would leave two sums of two, which every order adds alike.)
    func testTheMeasuredAlgorithmIsTheOneUsedAndResumeKeepsIt() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, epochs: 1)
        let measured = try mpirun(4, ["train", "--config", config, "--run-dir", dir + "/auto", "--stand-by", "off"], timeout: 180)
        XCTAssertEqual(measured.status, 0, measured.stderr)
        let chosen = try XCTUnwrap(allreduceRecord(dir + "/auto")["algorithm"] as? Int)
        let resumed = try mpirun(4, ["train", "--run-dir", dir + "/auto", "--resume", "--epochs", "2", "--stand-by", "off"], timeout: 180)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(allreduceLines(resumed), ["allreduce: \(AllreduceTuning.name(chosen)) (measured by the run being resumed), not measured again"],
                       resumed.stdout)
        let record = try allreduceRecord(dir + "/auto")
        XCTAssertEqual(record["source"] as? String, "resumed")
        XCTAssertEqual(record["algorithm"] as? Int, chosen)

        let named = try mpirun(4, ["train", "--config", config, "--epochs", "2", "--run-dir", dir + "/named",
                                   "--allreduce-algorithm", flagName(chosen), "--stand-by", "off"], timeout: 180)
        XCTAssertEqual(named.status, 0, named.stderr)
        XCTAssertEqual(try modelParameters(dir + "/auto"), try modelParameters(dir + "/named"),
                       "measured, then resumed, sums as algorithm \(chosen) named")
        // Open MPI's families on 4 ranks: {1, 2} reduce at one rank, {3, 6}
        // pairwise, {4, 5} around the ring; shared memory adds in rank order.
        let other = [1, 2, AllreduceTuning.sharedMemory].contains(chosen) ? 4 : 1
        let different = try mpirun(4, ["train", "--config", config, "--epochs", "2", "--run-dir", dir + "/other",
                                       "--allreduce-algorithm", String(other), "--stand-by", "off"], timeout: 180)
        XCTAssertEqual(different.status, 0, different.stderr)
        XCTAssertNotEqual(try modelParameters(dir + "/other"), try modelParameters(dir + "/named"),
                          "algorithms \(other) and \(chosen) add in different orders")
    }
}

/// The gradients' allreduce overlapped with backward, under real mpirun.
final class OverlapTests: XCTestCase {
    /// Spiral data on 2-1100-1000-1: the last two layers (1.1M values) fill
    /// one 4 MB bucket, the first layer another.
    func config(in dir: String) -> String {
        write("""
            data:
              train: {format: synthetic, name: spiral, samples: 256, noise: 0.1, seed: 3}
            model:
              layers:
                - dense: {units: 1100, activation: relu}
                - dense: {units: 1000, activation: relu}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.001}
            training: {epochs: 2, batch_size: 32, seed: 4}
            """, "wide-spiral.yaml", in: dir)
    }

    func overlapRecord(_ runDirectory: String) throws -> [String: Any] {
        let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDirectory + "/run.json"))) as? [String: Any])
        return try XCTUnwrap(run["overlap"] as? [String: Any], "run.json's overlap")
    }

    func testOverlappedSumsEqualTheFusedOnesAndAutoMeasuresBoth() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir)
        var models: [String: [Float]] = [:]
        for request in ["on", "off", "auto"] {
            let run = dir + "/" + request
            let outcome = try mpirun(2, ["train", "--config", config, "--run-dir", run, "--overlap-allreduce", request,
                                         "--allreduce-algorithm", "ring", "--shard-optimizer", "off"], timeout: 180)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)
            let record = try overlapRecord(run)
            XCTAssertEqual(record["buckets"] as? Int, 2)
            switch request {
            case "on":
                XCTAssertTrue(outcome.stdout.contains("gradients: allreduce in 2 buckets overlapped with backward"), outcome.stdout)
                XCTAssertTrue(outcome.stdout.contains("overlap: overlapped (2 buckets) (--overlap-allreduce on)"), outcome.stdout)
                XCTAssertEqual(record["overlapped"] as? Bool, true)
                XCTAssertEqual(record["source"] as? String, "flag")
            case "off":
                XCTAssertTrue(outcome.stdout.contains("gradients: allreduce on host memory"), outcome.stdout)
                XCTAssertEqual(record["overlapped"] as? Bool, false)
            default:
                XCTAssertNotNil(outcome.stdout.range(of: "overlap: measured per pass: one allreduce after backward [0-9.]+ ms, 2 buckets during backward [0-9.]+ ms → ",
                                                     options: .regularExpression), outcome.stdout)
                XCTAssertEqual(record["source"] as? String, "measured")
                XCTAssertGreaterThan(record["fused_ms"] as? Double ?? 0, 0)
                XCTAssertGreaterThan(record["overlapped_ms"] as? Double ?? 0, 0)
            }
            models[request] = try modelParameters(run)
        }
        // Two ranks add each value once, x₀ + x₁, in whatever buckets: the same bits.
        XCTAssertEqual(models["on"], models["off"])
        XCTAssertEqual(models["auto"], models["off"])
    }

    func testWithoutThreadSupportTheSumIsOneAllreduce() throws {
        let dir = temporaryDirectory(self)
        let outcome = try mpirun(2, ["train", "--config", config(in: dir), "--run-dir", dir + "/r", "--overlap-allreduce", "on",
                                     "--collective-timeout", "0"], timeout: 180)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("gradients: allreduce on host memory"), outcome.stdout)
        XCTAssertFalse(outcome.stdout.contains("overlap:"), outcome.stdout)
        let record = try overlapRecord(dir + "/r")
        XCTAssertEqual(record["source"] as? String, "inapplicable")
        XCTAssertTrue((record["detail"] as? String)?.contains("without thread support") == true, "\(record)")
    }
}

/// The optimizer update sharded over the ranks, under real mpirun.
final class ShardingTests: XCTestCase {
    /// Spiral data on 2-300-220-1: 67,341 parameters, enough for `auto` to shard.
    func config(in dir: String) -> String {
        write("""
            data:
              train: {format: synthetic, name: spiral, samples: 256, noise: 0.1, seed: 3}
            model:
              layers:
                - dense: {units: 300, activation: relu}
                - dense: {units: 220, activation: relu}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.001}
            training: {epochs: 2, batch_size: 32, seed: 4}
            """, "spiral-67k.yaml", in: dir)
    }

    func shardingRecord(_ runDirectory: String) throws -> [String: Any] {
        let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDirectory + "/run.json"))) as? [String: Any])
        return try XCTUnwrap(run["optimizer_sharding"] as? [String: Any], "run.json's optimizer_sharding")
    }

    /// Two ranks add each value once, in the reduce-scatter as in the
    /// allreduce, and the update is element-wise: the same bits either way,
    /// and `auto` times both ways before choosing.
    func testShardedUpdateGivesTheWholeOneBitForBitAndAutoMeasuresBoth() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir)
        var models: [String: [Float]] = [:]
        for request in ["on", "off", "auto"] {
            let run = dir + "/" + request
            let outcome = try mpirun(2, ["train", "--config", config, "--run-dir", run, "--shard-optimizer", request,
                                         "--allreduce-algorithm", "ring"], timeout: 180)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)
            let record = try shardingRecord(run)
            switch request {
            case "on":
                XCTAssertTrue(outcome.stdout.contains("gradients: reduce-scatter, each rank updates 1/2 of the parameters, all-gather"), outcome.stdout)
                XCTAssertTrue(outcome.stdout.contains("optimizer update: sharded over 2 ranks (--shard-optimizer on)"), outcome.stdout)
                XCTAssertEqual(record["sharded"] as? Bool, true)
                XCTAssertEqual(record["source"] as? String, "flag")
                XCTAssertEqual(record["part_size"] as? Int, 33_680)
            case "off":
                XCTAssertTrue(outcome.stdout.contains("gradients: allreduce on host memory"), outcome.stdout)
                XCTAssertEqual(record["sharded"] as? Bool, false)
                XCTAssertEqual(record["source"] as? String, "flag")
            default:
                XCTAssertNotNil(outcome.stdout.range(of: "optimizer update: measured per step: whole on every rank [0-9.]+ ms, sharded over 2 ranks [0-9.]+ ms → (sharded|whole)",
                                                     options: .regularExpression), outcome.stdout)
                XCTAssertEqual(record["source"] as? String, "measured")
                XCTAssertGreaterThan(record["whole_ms"] as? Double ?? 0, 0)
                XCTAssertGreaterThan(record["sharded_ms"] as? Double ?? 0, 0)
            }
            models[request] = try modelParameters(run)
        }
        XCTAssertEqual(models["on"], models["off"])
        XCTAssertEqual(models["auto"], models["off"])
    }

    /// Where sharding cannot apply, asking for it is one line and exit 2.
    func testShardingOnWhereItCannotApplyIsOneLine() throws {
        let dir = temporaryDirectory(self)
        let compressed = try mpirun(2, ["train", "--config", config(in: dir), "--run-dir", dir + "/c", "--shard-optimizer", "on",
                                        "--gradient-compression", "bf16"], timeout: 120)
        XCTAssertEqual(compressed.status, 2, compressed.stderr)
        XCTAssertTrue(compressed.stderr.contains("--shard-optimizer on: cannot shard the update here: gradient compression sums the whole buffer at once"),
                      compressed.stderr)
        let both = try nntrain(["train", "--config", config(in: dir), "--run-dir", dir + "/o", "--shard-optimizer", "on",
                                "--overlap-allreduce", "on"])
        XCTAssertEqual(both.status, 2, both.stderr)
        XCTAssertTrue(both.stderr.contains("--shard-optimizer on and --overlap-allreduce on"), both.stderr)
        XCTAssertFalse(both.stderr.contains("Fatal error"), both.stderr)
    }
}
