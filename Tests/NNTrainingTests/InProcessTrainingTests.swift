// The trainer across ranks, with every rank a thread of this process
// (ThreadCommunicator): world sizes agree up to summation order, a stop on
// one rank stops all of them at one step, a resumed run continues exactly,
// a diverging run fails on every rank alike, and a wrong allreduce is caught.
//
// Every world runs inside `withDeadline`, so a rank stuck in a collective
// fails the test after 30 s instead of hanging the suite.

import Foundation
import XCTest
import NNCore
import NNData
import NNDistributed
import NNTraining

final class InProcessTrainingTests: XCTestCase {
    // 97 samples in global batches of 12: eight full steps and a last step of
    // one sample, which leaves ranks 0 and 1 of three (rank 0 of two) without
    // any. The dropout layer checks that masks follow the global row, not the
    // rank's.
    static let classifier = """
        data:
          train: {format: synthetic, name: spiral, samples: 97, noise: 0.1, seed: 1}
          test: {format: synthetic, name: spiral, samples: 40, noise: 0.1, seed: 2}
          scale: standardize
        model:
          layers:
            - dense: {units: 8, activation: tanh}
            - dropout: {rate: 0.1}
            - dense: {units: 8, activation: tanh}
            - dense: {units: 1, activation: sigmoid}
        loss: binary_crossentropy
        optimizer: {name: adam, learning_rate: 0.01}
        training: {epochs: 4, batch_size: 12, seed: 7}
        """
    static let stepsPerEpoch = 9

    /// Relative difference allowed between world sizes: they add the same
    /// per-sample gradients in a different order, nothing more.
    static let tolerance = 1e-5

    // MARK: - 1. World sizes

    func testWorldOfThreeMatchesWorldOfOneUpToSummationOrder() throws {
        let sampler = ShardedSampler(sampleCount: 97, globalBatchSize: 12, seed: 7)
        XCTAssertEqual(sampler.stepsPerEpoch, Self.stepsPerEpoch)
        XCTAssertEqual(sampler.globalBatch(step: 8).count, 1)
        XCTAssertTrue(sampler.localBatch(step: 8, rank: 0, worldSize: 3).isEmpty, "the test needs a rank without samples")

        let comparison = try compareWorlds(fault: nil)
        XCTAssertEqual(comparison.problems, [])
        print("world 3 against world 1: parameters differ by \(comparison.parameterDifference) (relative)")
        XCTAssertEqual(comparison.trainingSamples, 97)
        XCTAssertEqual(comparison.epochs, 4)
    }

    /// Buckets of 64 bytes cut the model's gradients into one bucket per
    /// layer; summed as backward goes (and all at the end on the ranks
    /// without samples in the last step), they add in rank order as the
    /// one allreduce does, so the parameters agree bit for bit.
    func testOverlappedAllreduceEqualsTheFusedOneBitForBit() throws {
        let fused = try train(ranks: 3, yaml: Self.classifier)
        let overlapped = try train(ranks: 3, yaml: Self.classifier, overlapBuckets: 64)
        XCTAssertEqual(overlapped.map(\.error), [nil, nil, nil])
        for rank in 0..<3 {
            XCTAssertEqual(overlapped[rank].parameters, fused[rank].parameters, "rank \(rank)")
        }
        XCTAssertNotEqual(fused[0].parameters, try train(ranks: 1, yaml: Self.classifier)[0].parameters,
                          "another world size adds in another order: the comparison can tell")
    }

    /// Each rank sums and updates its part (parts of 48, 48 and 9 of the
    /// 105 parameters), and the parts are gathered: the ranks add in rank
    /// order as the allreduce does and the update is element-wise, so the
    /// parameters, and the optimizer state every checkpoint holds, agree
    /// bit for bit with the whole update on every rank.
    func testShardedUpdateEqualsTheWholeOneBitForBit() throws {
        let whole = try train(ranks: 3, yaml: Self.classifier, schedule: TrainingSchedule(checkpointEvery: 5))
        let sharded = try train(ranks: 3, yaml: Self.classifier, schedule: TrainingSchedule(checkpointEvery: 5), shard: true)
        XCTAssertEqual(sharded.map(\.error), [nil, nil, nil])
        XCTAssertEqual(OptimizerSharding(count: 105, ranks: 3).parts, [0..<48, 48..<96, 96..<105])
        for rank in 0..<3 {
            XCTAssertEqual(sharded[rank].parameters, whole[rank].parameters, "rank \(rank)")
        }
        let wholeCheckpoints = Checkpoints.list(whole[0].directory), shardedCheckpoints = Checkpoints.list(sharded[0].directory)
        XCTAssertEqual(wholeCheckpoints.count, 3)
        XCTAssertEqual(shardedCheckpoints.map { URL(fileURLWithPath: $0).lastPathComponent },
                       wholeCheckpoints.map { URL(fileURLWithPath: $0).lastPathComponent })
        for (a, b) in zip(wholeCheckpoints, shardedCheckpoints) {
            let (expected, found) = (try ModelFile.read(path: a), try ModelFile.read(path: b))
            XCTAssertFalse(expected.optimizerState.isEmpty)
            XCTAssertEqual(found.optimizerState, expected.optimizerState, b)
            XCTAssertEqual(found.parameters, expected.parameters, b)
        }
    }

    func testOneRankPerCoreTrainsOnEachOversubscribedHost() {
        func plan(_ hosts: [String], _ cores: [Int], sharing: [Bool]? = nil, batch: Int = 128) -> [[Int]]? {
            StandBy.plan(hosts: hosts, cores: cores, sharingCores: sharing, batchSize: batch).map { [$0.training, $0.standingBy] }
        }
        XCTAssertEqual(plan(["a", "a", "a", "a"], [2, 2, 2, 2]), [[0, 1], [2, 3]])
        XCTAssertEqual(plan(["a", "a", "a"], [2, 2, 2]), [[0, 1], [2]], "3 ranks on 2 cores: 2 train")
        XCTAssertEqual(plan(["a", "a", "a"], [1, 1, 1]), [[0], [1, 2]])
        XCTAssertNil(plan(["a", "a", "a", "a"], [2, 2, 2, 2], sharing: [true, false, true, true]), "ranks bound to cores of their own")
        // Only the oversubscribed host leaves ranks standing by, wherever its ranks are.
        XCTAssertEqual(plan(["a", "a", "a", "b", "b"], [1, 1, 1, 8, 8], batch: 96), [[0, 3, 4], [1, 2]])
        XCTAssertEqual(plan(["a", "b", "a", "b"], [1, 1, 1, 1]), [[0, 1], [2, 3]], "ranks spread round robin")
        XCTAssertNil(plan(["a", "a"], [2, 2]), "a core each")
        XCTAssertNil(plan(["a", "a", "a", "b"], [2, 2, 2, 8]), "128 does not divide over the 3 that would train")
        XCTAssertEqual(plan(["a", "a", "a", "b"], [2, 2, 2, 8], batch: 129), [[0, 1, 3], [2]])
    }

    func testShardingPartsCoverTheLayoutInAlignedPieces() {
        XCTAssertEqual(OptimizerSharding(count: 235_146, ranks: 4).parts,
                       [0..<58_800, 58_800..<117_600, 117_600..<176_400, 176_400..<235_146])
        XCTAssertEqual(OptimizerSharding(count: 10, ranks: 3).parts, [0..<10, 10..<10, 10..<10], "small layouts leave parts empty")
        XCTAssertEqual(OptimizerSharding(count: 0, ranks: 2).parts, [0..<0, 0..<0])
        for ranks in 1...9 {
            let parts = OptimizerSharding(count: 1000, ranks: ranks).parts
            XCTAssertEqual(parts.count, ranks)
            XCTAssertEqual(parts.first?.lowerBound, 0)
            XCTAssertEqual(parts.last?.upperBound, 1000)
            XCTAssertTrue(zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && $1.lowerBound % 16 == 0 }, "\(parts)")
        }
    }

    /// A sharded run stopped mid-epoch and resumed, sharded, on as many
    /// ranks repeats the uninterrupted one exactly (the checkpoint holds
    /// every part of the optimizer state), and resumes unsharded too.
    func testShardedRunStoppedAndResumedContinuesExactly() throws {
        let config = Self.classifier.replacingOccurrences(of: "epochs: 4", with: "epochs: 3")
        let uninterrupted = try train(ranks: 3, yaml: config, shard: true)
        let stopped = try train(ranks: 3, yaml: config, stop: (rank: 2, afterSteps: 10), shard: true)
        guard case .stopped? = stopped[0].outcome else { return XCTFail(stopped[0].error ?? "finished instead of stopping") }
        let (_, path) = try Checkpoints.latestValid(in: stopped[0].directory) { XCTFail($0) }
        let resumed = try train(ranks: 3, yaml: config, resumeFrom: path, shard: true)
        XCTAssertEqual(resumed.compactMap(\.error), [])
        XCTAssertEqual(resumed[0].parameters, uninterrupted[0].parameters, "resumed sharded vs uninterrupted sharded")
        let unsharded = try train(ranks: 3, yaml: config, resumeFrom: path)
        XCTAssertEqual(unsharded[0].parameters, uninterrupted[0].parameters, "resumed unsharded vs uninterrupted sharded")
    }

    /// With the update sharded, each rank checks only its part of the
    /// gradients and weights; the ranks still stop at the same step with the
    /// message the whole update gives (counts and first index in the flat layout).
    func testShardedRanksAgreeOnNonFiniteValuesAsTheWholeUpdateDoes() throws {
        let overflowing = """
            data:
              train: {format: synthetic, name: spiral, samples: 40, noise: 0.1, seed: 1}
            model:
              layers:
                - dense: {units: 8, activation: tanh}
                - dense: {units: 2, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adamw, learning_rate: 1000, weight_decay: 1000000}
            training: {epochs: 5, batch_size: 4, seed: 1}
            """
        let diverging = """
            data:
              train: {format: synthetic, name: gaussian, samples: 97, seed: 1}
            model:
              layers:
                - dense: {units: 1}
            loss: mse
            optimizer: {name: sgd, learning_rate: 1}
            training: {epochs: 6, batch_size: 12, seed: 7}
            """
        for (name, yaml, ranks) in [("update", overflowing, 2), ("gradients", diverging, 3)] {
            let whole = try train(ranks: ranks, yaml: yaml)
            let sharded = try train(ranks: ranks, yaml: yaml, shard: true)
            let message = try XCTUnwrap(whole[0].error, name)
            XCTAssertTrue(message.contains(name == "update" ? "the update made" : "NaN, infinite or too large to square"), message)
            XCTAssertEqual(sharded.map(\.error), Array(repeating: message, count: ranks), name)
            XCTAssertEqual(sharded.map(\.events.stepsRun), whole.map(\.events.stepsRun), name)
        }
    }

    // MARK: - 2. Stop and resume on another world size

    func testStopOnOneRankThenResumeOnOtherWorldSizes() throws {
        let config = Self.classifier.replacingOccurrences(of: "epochs: 4", with: "epochs: 3")
        let oneRank = try train(ranks: 1, yaml: config)
        let twoRanks = try train(ranks: 2, yaml: config)

        // Rank 1 asks after its 10th step; the ranks poll every 8 steps, so
        // all of them stop after step 16: epoch 2, step 7 of 9.
        let stopped = try train(ranks: 2, yaml: config, stop: (rank: 1, afterSteps: 10))
        for run in stopped {
            guard case .stopped(let point, let history)? = run.outcome else {
                XCTFail("rank \(run.rank): \(run.error ?? "finished instead of stopping")")
                continue
            }
            XCTAssertEqual([point.epoch, point.stepInEpoch, point.steps, point.globalStep, point.worldSize], [2, 7, 9, 16, 2],
                           "rank \(run.rank)")
            XCTAssertEqual(history.map(\.epoch), [1], "rank \(run.rank)")
            XCTAssertEqual(run.events.stepsRun, 16, "rank \(run.rank)")
        }
        let directory = stopped[0].directory
        XCTAssertEqual(checkpointSteps(directory).last, 16)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/model.safetensors"))
        let (saved, path) = try Checkpoints.latestValid(in: directory) { XCTFail($0) }
        let position = try XCTUnwrap(saved.position)
        XCTAssertEqual([position.epoch, position.stepInEpoch, position.globalStep, position.worldSize, position.epochSamples],
                       [1, 7, 16, 2, 84])
        // The running sums of the 7 steps taken: a positive, finite loss sum, at most 84 correct.
        XCTAssertEqual(position.epochStatistics.count, Statistic.width)
        XCTAssertTrue(position.epochStatistics[0].isFinite && position.epochStatistics[0] > 0, "\(position.epochStatistics)")
        XCTAssertTrue((0...84).contains(position.epochStatistics[1]), "\(position.epochStatistics)")
        XCTAssertEqual(saved.optimizerSteps, 16)
        XCTAssertEqual(saved.parameters, stopped[0].parameters, "the checkpoint holds the parameters the ranks stopped with")

        let onThree = try train(ranks: 3, yaml: config, resumeFrom: path)
        let onTwo = try train(ranks: 2, yaml: config, resumeFrom: path)
        for (name, resumed) in [("3 ranks", onThree), ("2 ranks", onTwo)] {
            XCTAssertEqual(resumed.compactMap(\.error), [], name)
            XCTAssertEqual(resumed.map(\.events.stepsRun), Array(repeating: 27 - 16, count: resumed.count), name)
            XCTAssertEqual(resumed[0].result?.history.map(\.epoch), [2, 3], name)
            XCTAssertEqual(resumed[0].result?.history.map(\.stepsRun), [2, 9], name)
        }

        // Another world size adds in another order: close to world 1.
        let difference = relativeDifference(onThree[0].parameters, oneRank[0].parameters)
        XCTAssertLessThan(difference, Self.tolerance, "resumed on 3 ranks vs uninterrupted on 1")
        print("stopped on 2 ranks, resumed on 3, against uninterrupted on 1: parameters differ by \(difference) (relative)")
        XCTAssertEqual(Set(onThree.map { $0.result?.parameterChecksum }).count, 1, "replicas of the resumed run")
        // The same world size repeats the same operations: exactly world 2.
        XCTAssertEqual(onTwo[0].parameters, twoRanks[0].parameters, "resumed on 2 ranks vs uninterrupted on 2")
        XCTAssertEqual(onTwo[0].result?.parameterChecksum, twoRanks[0].result?.parameterChecksum)

        // The interrupted epoch's loss joins the saved running sums with the
        // resumed steps'; the next epoch starts afresh and repeats world 2 exactly.
        let uninterrupted = twoRanks[0].result?.history ?? []
        let resumed = onTwo[0].result?.history ?? []
        XCTAssertEqual(uninterrupted.count, 3)
        XCTAssertEqual(resumed.count, 2)
        if uninterrupted.count == 3, resumed.count == 2 {
            XCTAssertEqual(resumed[0].training.samples, uninterrupted[1].training.samples)
            XCTAssertLessThan(relativeDifference(resumed[0].training.loss, uninterrupted[1].training.loss), Self.tolerance)
            XCTAssertEqual(resumed[1].training, uninterrupted[2].training)
        }
        let onThreeLoss = onThree[0].result?.history.last?.training.loss ?? .nan
        let oneRankLoss = oneRank[0].result?.history.last?.training.loss ?? .nan
        XCTAssertLessThan(relativeDifference(onThreeLoss, oneRankLoss), Self.tolerance, "last epoch's loss, 3 resumed vs 1")
    }

    /// A compressed run's residuals resume on another world size as even
    /// shares of their sum, on the same world size as each rank's own.
    func testCompressionResidualsMoveToAnotherWorldSizeWithTheirSum() throws {
        let config = Self.classifier.replacingOccurrences(of: "batch_size: 12, seed: 7}", with: "batch_size: 12, seed: 7, gradient_compression: bf16}")
        XCTAssertNotEqual(config, Self.classifier)
        let stopped = try train(ranks: 2, yaml: config, stop: (rank: 0, afterSteps: 5))
        XCTAssertEqual(stopped.compactMap(\.error), [])
        let (snapshot, _) = try Checkpoints.latestValid(in: stopped[0].directory) { XCTFail($0) }
        let saved = try XCTUnwrap(snapshot.gradientResiduals)
        let n = saved.count / 2
        XCTAssertTrue(saved.contains { $0 != 0 }, "rounding left something behind")
        for ranks in [2, 3, 4] {  // one rank sums nothing, so it compresses nothing
            let residuals = try withDeadline(30) {
                try ThreadCommunicator.run(ranks: ranks) { communicator in
                    let parsed = try ConfigReader.parse(config, file: "test")
                    let data = try DataLoading.prepare(parsed, objective: try parsed.objective(), includeTest: true)
                    let trainer = try Trainer(config: parsed, data: data, accelerator: CPUAccelerator(threads: 1),
                                              communicator: communicator, start: .checkpoint(snapshot),
                                              schedule: TrainingSchedule(), store: nil)
                    return trainer.reducer.residual ?? []
                }
            }
            for (rank, residual) in residuals.enumerated() {
                let expected = ranks == 2 ? Array(saved[rank * n..<(rank + 1) * n])
                                          : (0..<n).map { (saved[$0] + saved[n + $0]) / Float(ranks) }
                XCTAssertEqual(residual, expected, "rank \(rank) of \(ranks)")
            }
        }
    }

    func testCheckpointsByTimeComeAtTheSameStepOnEveryRankAndResumeExactly() throws {
        // Due at every poll (every 8 steps with 2 ranks): rank 0's clock
        // decides, the poll's allreduce tells every rank at the same step.
        let config = Self.classifier.replacingOccurrences(of: "epochs: 4", with: "epochs: 3")
        let timed = TrainingSchedule(checkpointSeconds: 1e-9)
        let runs = try train(ranks: 2, yaml: config, schedule: timed, keep: 100)
        let epochEnds = [9, 18, 27], polls = [8, 16, 24]
        for run in runs {
            XCTAssertNil(run.error, "rank \(run.rank)")
            XCTAssertEqual(run.events.checkpointSteps, (epochEnds + polls).sorted(), "rank \(run.rank)")
        }
        XCTAssertEqual(checkpointSteps(runs[0].directory), (epochEnds + polls).sorted())
        // From the mid-epoch one at step 16, the same end as without it.
        let plain = try train(ranks: 2, yaml: config)
        let resumed = try train(ranks: 2, yaml: config, resumeFrom: runs[0].directory + "/checkpoints/step-00000016.safetensors")
        XCTAssertEqual(resumed[0].parameters, plain[0].parameters)
        XCTAssertEqual(runs[0].parameters, plain[0].parameters, "checkpoints change nothing")
    }

    // MARK: - 3. Non-finite gradients

    func testNonFiniteGradientsStopEveryRankAtTheSameStep() throws {
        // A linear model on unscaled data with plain SGD at rate 1: each step
        // multiplies the weights by about 8, until the gradients' squares
        // overflow (an update that overflows is the next test). Checkpoints
        // after every step show which steps were saved.
        let diverging = """
            data:
              train: {format: synthetic, name: gaussian, samples: 97, seed: 1}
            model:
              layers:
                - dense: {units: 1}
            loss: mse
            optimizer: {name: sgd, learning_rate: 1}
            training: {epochs: 6, batch_size: 12, seed: 7}
            """
        let runs = try train(ranks: 3, yaml: diverging, schedule: TrainingSchedule(checkpointEvery: 1), keep: 100)
        let messages = runs.map { $0.error ?? "no error" }
        XCTAssertEqual(Set(messages).count, 1, "every rank reports the same failure: \(messages)")
        let message = messages[0]
        XCTAssertTrue(message.contains("NaN, infinite or too large to square"), message)
        guard let badStep = Self.step(in: message) else { return XCTFail("no step in: \(message)") }
        XCTAssertGreaterThan(badStep, Self.stepsPerEpoch, "the test needs an epoch of finite steps")
        XCTAssertNotEqual(badStep % Self.stepsPerEpoch, 0, "the test needs the failure mid-epoch")
        for run in runs {
            XCTAssertNil(run.outcome, "rank \(run.rank)")
            // The step that produced the bad gradients ran on every rank; it
            // was the last one.
            XCTAssertEqual(run.events.stepsRun, badStep - 1, "rank \(run.rank)")
            XCTAssertEqual(run.events.checkpointSteps, Array(1..<badStep), "rank \(run.rank)")
            XCTAssertEqual(run.parameters, runs[0].parameters, "rank \(run.rank) skipped the bad update like rank 0")
        }
        let directory = runs[0].directory
        XCTAssertEqual(checkpointSteps(directory), Array(1..<badStep), "no checkpoint from the bad step or later")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/model.safetensors"))
        // Damaged checkpoints would be skipped with a warning: there must be none.
        let (last, _) = try Checkpoints.latestValid(in: directory) { XCTFail($0) }
        XCTAssertEqual(last.position?.globalStep, badStep - 1)
        XCTAssertTrue(last.parameters.allSatisfy(\.isFinite), "the last checkpoint holds finite weights")
        XCTAssertEqual(last.parameters, runs[0].parameters, "the last checkpoint holds the weights the ranks stopped with")
    }

    func testAnUpdateThatOverflowsStopsEveryRankAndNothingNonFiniteIsSaved() throws {
        // Decoupled weight decay of η·λ = 10⁹ multiplies every weight by
        // −10⁹ per step: the weights overflow in the update itself, while the
        // gradients of the step before are still finite.
        let overflowing = """
            data:
              train: {format: synthetic, name: spiral, samples: 40, noise: 0.1, seed: 1}
            model:
              layers:
                - dense: {units: 8, activation: tanh}
                - dense: {units: 2, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adamw, learning_rate: 1000, weight_decay: 1000000}
            training: {epochs: 5, batch_size: 4, seed: 1}
            """
        let runs = try train(ranks: 2, yaml: overflowing, schedule: TrainingSchedule(checkpointEvery: 1), keep: 100)
        let messages = runs.map { $0.error ?? "no error" }
        XCTAssertEqual(Set(messages).count, 1, "every rank reports the same failure: \(messages)")
        let message = messages[0]
        XCTAssertTrue(message.contains("the update made") && message.contains("the first in layers.0.weight"), message)
        guard let badStep = Self.step(in: message) else { return XCTFail("no step in: \(message)") }
        XCTAssertGreaterThan(badStep, 1)
        let directory = runs[0].directory
        XCTAssertEqual(checkpointSteps(directory), Array(1..<badStep), "no checkpoint from the bad step on")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/model.safetensors"))
        for path in Checkpoints.list(directory) {
            let snapshot = try ModelFile.read(path: path)
            XCTAssertTrue(snapshot.parameters.allSatisfy(\.isFinite) && snapshot.optimizerState.allSatisfy(\.isFinite), path)
        }
        let (last, _) = try Checkpoints.latestValid(in: directory) { XCTFail($0) }
        XCTAssertEqual(last.position?.globalStep, badStep - 1, "latest is the last good step")
    }

    func testSkippedStepsAreTheSameOnEveryRankAndCounted() throws {
        // One row of 97 holds a feature of 10³⁰: every batch that contains it
        // has infinite gradients (once per epoch), and is skipped.
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var rows = ["a,b,y"]
        for i in 0..<97 { rows.append(i == 41 ? "1e30,1,0.5" : "\(Float(i % 7) / 7),\(Float(i % 5) / 5),\(Float(i % 3) / 3)") }
        try (rows.joined(separator: "\n") + "\n").write(toFile: directory + "/spiked.csv", atomically: true, encoding: .utf8)
        let yaml = """
            task: regression
            data:
              train: {format: csv, path: \(directory)/spiked.csv, label: y}
              scale: none
            model:
              layers:
                - dense: {units: 1}
            loss: mse
            optimizer: {name: sgd, learning_rate: 0.05}
            training: {epochs: 3, batch_size: 12, seed: 7, on_nonfinite: skip}
            """
        let three = try train(ranks: 3, yaml: yaml, directory: directory + "/three")
        let one = try train(ranks: 1, yaml: yaml, directory: directory + "/one")
        for run in three + one {
            XCTAssertNil(run.error, "rank \(run.rank)")
            XCTAssertEqual(run.result?.history.map(\.skippedSteps), [1, 1, 1], "rank \(run.rank): one step skipped per epoch")
            XCTAssertEqual(run.result?.history.filter { $0.training.loss.isFinite }.count, 3,
                           "rank \(run.rank): a skipped step's loss is not counted")
            XCTAssertTrue(run.parameters.allSatisfy(\.isFinite))
        }
        for run in three { XCTAssertEqual(run.parameters, three[0].parameters, "rank \(run.rank) skipped as rank 0 did") }
        XCTAssertLessThan(relativeDifference(three[0].parameters, one[0].parameters), Self.tolerance, "3 ranks vs 1")
        let model = try ModelFile.read(path: directory + "/three/model.safetensors")
        XCTAssertTrue(model.parameters.allSatisfy(\.isFinite))

        // Every step bad: the limit of skips in a row stops the run.
        let hopeless = yaml.replacingOccurrences(of: "on_nonfinite: skip", with: "on_nonfinite: skip, max_consecutive_skips: 3")
            .replacingOccurrences(of: "learning_rate: 0.05", with: "learning_rate: 1000000, weight_decay: 1000000")
        let stopped = try train(ranks: 2, yaml: hopeless, directory: directory + "/hopeless")
        for run in stopped {
            let message = run.error ?? "no error"
            XCTAssertTrue(message.contains("3 steps in a row were skipped"), message)
        }
    }

    // MARK: - 4. Stop on one rank

    func testStopOnTheLastRankStopsEveryRankAtTheSameStep() throws {
        // Rank 2 asks after its 5th step; polling every 4 steps stops all
        // three after step 8, the last full step of epoch 1.
        let runs = try train(ranks: 3, yaml: Self.classifier, schedule: TrainingSchedule(stopCheckInterval: 4),
                             stop: (rank: 2, afterSteps: 5))
        for run in runs {
            guard case .stopped(let point, _)? = run.outcome else {
                XCTFail("rank \(run.rank): \(run.error ?? "finished instead of stopping")")
                continue
            }
            XCTAssertEqual([point.epoch, point.stepInEpoch, point.globalStep, point.worldSize], [1, 8, 8, 3], "rank \(run.rank)")
            XCTAssertEqual(run.events.stepsRun, 8, "rank \(run.rank)")
            XCTAssertEqual(run.events.checkpointSteps, [8], "rank \(run.rank)")
            XCTAssertEqual(run.events.stoppedAt, 8, "rank \(run.rank)")
        }
        for run in runs.dropFirst() { XCTAssertEqual(run.parameters, runs[0].parameters, "rank \(run.rank) at the stop") }
        XCTAssertEqual(checkpointSteps(runs[0].directory), [8])
        let (saved, _) = try Checkpoints.latestValid(in: runs[0].directory) { XCTFail($0) }
        XCTAssertEqual(saved.parameters, runs[0].parameters)
    }

    // MARK: - 5. The checks catch a wrong allreduce

    func testWorldComparisonDetectsALostContribution() throws {
        // Every sum leaves rank 2 out: the ranks still agree with each other,
        // but no longer with world 1.
        let comparison = try compareWorlds(fault: .dropContribution(ofRank: 2))
        XCTAssertTrue(comparison.problems.contains { $0.hasPrefix("parameters differ from world 1") }, "\(comparison.problems)")
        XCTAssertTrue(comparison.problems.contains { $0.hasPrefix("epoch 1 training loss differs") }, "\(comparison.problems)")
        XCTAssertFalse(comparison.problems.contains { $0.hasPrefix("checksums") }, "\(comparison.problems)")
        XCTAssertGreaterThan(comparison.parameterDifference, 100 * Self.tolerance)
    }

    func testWorldComparisonDetectsOneRankReceivingAWrongSum() throws {
        // Only the first allreduce (step 1's gradients) is perturbed, and
        // only on rank 1: a perturbed stop poll or write status would end the
        // run for other reasons, hiding what this test is about.
        let perturb = AllReduceFault.perturbResult(ofRank: 1, by: 1e-3)
        let fault = AllReduceFault(stage: perturb.stage) { call, rank, value in
            call == 0 ? perturb.transform(call, rank, value) : value
        }
        let comparison = try compareWorlds(fault: fault)
        let diverged = comparison.problems.filter { $0.contains("replicas diverged: the parameters of rank(s) 1 differ") }
        XCTAssertEqual(diverged.count, 3, "every rank reports it: \(comparison.problems)")
    }

    // MARK: - Comparing world 3 with world 1

    struct Comparison {
        /// What disagrees; empty when world 3 matches world 1.
        var problems: [String] = []
        /// ‖p₃ − p₁‖ / ‖p₁‖ of rank 0's final parameters.
        var parameterDifference = Double.nan
        var trainingSamples = 0, epochs = 0
    }

    /// Trains `classifier` on 1 rank and on 3 (with `fault` in their
    /// allreduce) and lists every way the two disagree beyond summation order.
    func compareWorlds(fault: AllReduceFault?) throws -> Comparison {
        let one = try train(ranks: 1, yaml: Self.classifier)
        let three = try train(ranks: 3, yaml: Self.classifier, fault: fault)
        var comparison = Comparison()
        guard let reference = one[0].result else {
            comparison.problems.append("world 1: \(one[0].error ?? "did not finish")")
            return comparison
        }
        comparison.trainingSamples = one[0].trainingSamples
        comparison.epochs = reference.history.count
        for run in three where run.result == nil {
            comparison.problems.append("rank \(run.rank): \(run.error ?? "did not finish")")
        }
        let checksums = three.compactMap { $0.result?.parameterChecksum }
        if checksums.count == 3, Set(checksums).count != 1 {
            comparison.problems.append("checksums differ between ranks: \(checksums)")
        }
        if three.contains(where: { $0.parameters != three[0].parameters }) {
            comparison.problems.append("parameters differ between ranks")
        }
        comparison.parameterDifference = relativeDifference(three[0].parameters, one[0].parameters)
        if !(comparison.parameterDifference < Self.tolerance) {
            comparison.problems.append("parameters differ from world 1 by \(comparison.parameterDifference)")
        }
        // A rank's model file holds what that rank trained.
        if let path = three[0].modelPath, try ModelFile.read(path: path).parameters != three[0].parameters {
            comparison.problems.append("model file differs from rank 0's parameters")
        }
        if let result = three[0].result {
            for (a, b) in zip(result.history, reference.history) {
                let difference = relativeDifference(a.training.loss, b.training.loss)
                if !(difference < Self.tolerance) || a.training.samples != b.training.samples {
                    comparison.problems.append("epoch \(a.epoch) training loss differs by \(difference) (\(a.training.loss) vs \(b.training.loss))")
                }
            }
            if result.history.count != reference.history.count { comparison.problems.append("different number of epochs") }
            let testLoss = relativeDifference(result.test?.loss ?? .nan, reference.test?.loss ?? .nan)
            if !(testLoss < Self.tolerance) { comparison.problems.append("test loss differs by \(testLoss)") }
        }
        return comparison
    }

    // MARK: - Running a world

    /// What one rank brings back from a run.
    struct RankRun {
        var rank: Int
        var directory: String
        /// Nil when the run threw; `error` then holds the rank's message.
        var outcome: TrainingOutcome?
        var error: String?
        /// The parameters after the run (or after the error).
        var parameters: [Float]
        var events: EventLog
        var trainingSamples: Int

        var result: RunResult? {
            if case .finished(let result, _)? = outcome { return result }
            return nil
        }

        /// Where rank 0 saved the final model.
        var modelPath: String? {
            if case .finished(_, let path)? = outcome { return path }
            return nil
        }
    }

    /// Trains `yaml` on `ranks` threads, each rank with its own data,
    /// accelerator and trainer, rank 0 with a store in a fresh directory.
    /// `stop` sets the stop request of one rank after it has taken that many
    /// steps; `resumeFrom` is a checkpoint every rank reads, as the app does;
    /// `directory` is rank 0's run directory (default: a fresh one).
    /// A rank's training error is returned as its `error`: the world fails
    /// only when a rank is left waiting, and then this throws.
    func train(ranks: Int, yaml: String, fault: AllReduceFault? = nil, schedule: TrainingSchedule = TrainingSchedule(),
               keep: Int = 3, stop: (rank: Int, afterSteps: Int)? = nil, resumeFrom checkpoint: String? = nil,
               directory: String? = nil, overlapBuckets: Int? = nil, shard: Bool = false) throws -> [RankRun] {
        let directory = directory ?? temporaryDirectory()
        return try withDeadline(30) {
            try ThreadCommunicator.run(ranks: ranks, fault: fault) { communicator in
                let config = try ConfigReader.parse(yaml, file: "test")
                let data = try DataLoading.prepare(config, objective: try config.objective(), includeTest: true)
                let store = communicator.isCoordinator ? RunStore(directory: directory, keep: keep) : nil
                let start: StartingPoint = try checkpoint.map { .checkpoint(try ModelFile.read(path: $0)) } ?? .fresh
                let trainer = try Trainer(config: config, data: data, accelerator: CPUAccelerator(threads: 1),
                                          communicator: communicator, start: start, schedule: schedule, store: store)
                if let overlapBuckets {
                    let record = trainer.settleOverlap(.on, resumed: nil, bucketBytes: overlapBuckets)
                    XCTAssertEqual(record?.overlapped, true)
                    XCTAssertTrue(trainer.reducer.name.contains("overlapped with backward"), trainer.reducer.name)
                }
                if shard {
                    let record = try trainer.settleSharding(.on)
                    XCTAssertEqual(record?.sharded, ranks > 1 ? true : nil)
                }
                let flag = StopFlag()
                let events = EventLog(stop: stop?.rank == communicator.rank ? (flag, stop!.afterSteps) : nil)
                var run = RankRun(rank: communicator.rank, directory: directory, parameters: [], events: events,
                                  trainingSamples: data.training.count)
                do {
                    run.outcome = try trainer.run(observers: events, stop: flag)
                } catch let error as UserError {
                    run.error = error.message
                } catch let error as CollectiveFailure {
                    run.error = error.message ?? "(stopped; another rank reports why)"
                }
                run.parameters = trainer.accelerator.values(trainer.model.parameters)
                return run
            }
        }
    }

    /// Records one rank's events; optionally requests a stop after a number of steps.
    final class EventLog: TrainingObserver {
        private let stop: (flag: StopFlag, afterSteps: Int)?
        private(set) var stepsRun = 0
        private(set) var checkpointSteps: [Int] = []
        private(set) var stoppedAt: Int?

        init(stop: (flag: StopFlag, afterSteps: Int)?) { self.stop = stop }

        // Batch events are the step counter.
        func wantsBatchProgress(step: Int, of steps: Int) -> Bool { true }

        func observe(_ event: TrainingEvent) {
            switch event {
            case .batchEnded:
                stepsRun += 1
                if let stop, stepsRun == stop.afterSteps { stop.flag.request() }
            case .checkpointSaved(_, let globalStep): checkpointSteps.append(globalStep)
            case .stopped(let point): stoppedAt = point.globalStep
            default: break
            }
        }
    }

    // MARK: - Helpers

    /// The global steps of the checkpoints in a run directory, oldest first.
    func checkpointSteps(_ directory: String) -> [Int] {
        Checkpoints.list(directory).reversed().compactMap { path in
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            return Int(name.dropFirst("step-".count))
        }
    }

    /// The N of "step N" in a message.
    static func step(in message: String) -> Int? {
        guard let range = message.range(of: "step ") else { return nil }
        return Int(message[range.upperBound...].prefix { $0.isNumber })
    }

    func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var difference = 0.0, norm = 0.0
        for (x, y) in zip(a, b) {
            difference += (Double(x) - Double(y)) * (Double(x) - Double(y))
            norm += Double(y) * Double(y)
        }
        return (difference / norm).squareRoot()
    }

    func relativeDifference(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }
}
