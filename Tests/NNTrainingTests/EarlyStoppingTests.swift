// Early stopping: Keras' rule on sequences of epoch figures, and the trainer
// with it on several ranks: every rank stops at the same epoch, the final
// model is the best epoch's when asked, and a run stopped part-way and
// resumed stops where the uninterrupted one does, with the same parameters.

import Foundation
import XCTest
import NNCore
import NNDistributed
@testable import NNTraining

final class EarlyStoppingRuleTests: XCTestCase {
    /// The decisions for a run whose monitored figure takes `values`, epoch by epoch.
    func decisions(_ values: [Double], _ configure: (inout EarlyStoppingConfig) -> Void = { _ in },
                   monitor: String = "val_loss") -> (decisions: [EarlyStoppingDecision], state: EarlyStoppingState) {
        var config = EarlyStoppingConfig()
        config.monitor = monitor
        configure(&config)
        var rule = EarlyStopping(config)
        var result: [EarlyStoppingDecision] = []
        for (index, value) in values.enumerated() {
            let metrics = Metrics(statistics: [value * 10, value * 10, 0, 0], samples: 10, isClassifier: true, accuracyUnits: 1, outputs: 1)
            let record = EpochRecord(epoch: index + 1, globalStep: index + 1, worldSize: 1, training: metrics, validation: metrics,
                                     steps: 1, stepsRun: 1, seconds: 1, samplesPerSecond: 1, learningRate: 0.1)
            let decision = rule.update(record)
            result.append(decision)
            if decision == .stop { break }
        }
        return (result, rule.state)
    }

    func testPatienceCountsEpochsWithoutImprovement() {
        let (d, state) = decisions([0.9, 0.8, 0.85, 0.81, 0.82, 0.7]) { $0.patience = 3 }
        XCTAssertEqual(d, [.improved, .improved, .waiting, .waiting, .stop])
        XCTAssertEqual(state.best, 0.8)
        XCTAssertEqual(state.bestEpoch, 2)
        XCTAssertEqual(state.stoppedEpoch, 5)
    }

    func testPatienceZeroStopsAtTheFirstEpochWithoutImprovementButNeverAtTheFirst() {
        XCTAssertEqual(decisions([0.5, 0.6]).decisions, [.improved, .stop])
        XCTAssertEqual(decisions([.nan, 0.6, 0.7]).decisions, [.notWatched, .improved, .stop])
    }

    func testMinDeltaIsTheSmallestImprovementThatCounts() {
        let (d, state) = decisions([1.0, 0.95, 0.89]) { $0.patience = 1; $0.minDelta = 0.1 }
        XCTAssertEqual(d, [.improved, .stop], "0.95 is not 0.1 better than 1.0")
        XCTAssertEqual(state.bestEpoch, 1)
        XCTAssertEqual(decisions([1.0, 0.89]) { $0.patience = 1; $0.minDelta = 0.1 }.decisions, [.improved, .improved])
    }

    func testAccuracyIsMaximizedInAutoModeAndModesOverrideIt() {
        XCTAssertEqual(decisions([0.5, 0.6, 0.55], monitor: "val_accuracy").decisions, [.improved, .improved, .stop])
        XCTAssertEqual(decisions([0.5, 0.6], { $0.mode = .min }, monitor: "val_accuracy").decisions, [.improved, .stop])
        XCTAssertEqual(decisions([0.5, 0.6], { $0.mode = .max }).decisions, [.improved, .improved])
    }

    func testWarmUpEpochsAreNotWatched() {
        let (d, state) = decisions([0.1, 0.9, 0.8, 0.85]) { $0.startFromEpoch = 1 }
        XCTAssertEqual(d, [.notWatched, .improved, .improved, .stop])
        XCTAssertEqual(state.bestEpoch, 3)
    }

    func testAStateThatWatchedAnotherFigureStartsAfresh() {
        var config = EarlyStoppingConfig()
        config.patience = 2
        var saved = EarlyStoppingState(watching: config)
        saved.best = 0.69
        saved.bestEpoch = 3
        saved.wait = 1
        XCTAssertEqual(EarlyStopping(config, state: saved).state, saved, "the same figure continues")
        var accuracy = config
        accuracy.monitor = "val_accuracy"
        XCTAssertEqual(EarlyStopping(accuracy, state: saved).state, EarlyStoppingState(watching: accuracy))
        var maximized = config
        maximized.mode = .max
        XCTAssertNil(EarlyStopping(maximized, state: saved).state.best, "another direction starts afresh")
    }

    func testAMonitorTheRunDoesNotProduceIsRefusedWithTheChoices() throws {
        let yaml = InProcessTrainingTests.classifier.replacingOccurrences(
            of: "training: {epochs: 4, batch_size: 12, seed: 7}",
            with: "training: {epochs: 4, batch_size: 12, seed: 7, early_stopping: {monitor: val_loss}}")
        XCTAssertThrowsError(try ConfigReader.parse(yaml, file: "run.yaml")) { error in
            XCTAssertEqual((error as? UserError)?.message,
                           "run.yaml:13: training.early_stopping.monitor: 'val_loss' needs a validation set; set data.validation_split (e.g. 0.1), or monitor loss or accuracy")
        }
        let typo = EarlyStoppingTests.config.replacingOccurrences(of: "monitor: val_loss", with: "monitor: val_mae")
        XCTAssertThrowsError(try ConfigReader.parse(typo, file: "run.yaml")) { error in
            XCTAssertEqual((error as? UserError)?.message,
                           "run.yaml:17: training.early_stopping.monitor: 'val_mae' is not a figure of this run; choose one of loss, accuracy, val_loss, val_accuracy")
        }
    }
}

extension InProcessTrainingTests {
    func testEarlyStoppingStopsEveryRankAtTheSameEpochAndRestoresTheBest() throws {
        let runs = try train(ranks: 3, yaml: EarlyStoppingTests.config)
        XCTAssertEqual(runs.compactMap(\.error), [])
        let stops = runs.map { $0.result?.earlyStop }
        let stop = try XCTUnwrap(stops[0], "the run should stop early")
        XCTAssertEqual(Set(stops), [stop], "every rank stops at the same epoch")
        XCTAssertLessThan(stop.stoppedEpoch, 60)
        XCTAssertEqual(stop.stoppedEpoch - stop.bestEpoch, 3, "patience 3")
        XCTAssertTrue(stop.restoredBestWeights)
        XCTAssertEqual(runs[0].result?.history.count, stop.stoppedEpoch)
        // The best epoch's figure is the smallest val_loss of the run.
        let history = try XCTUnwrap(runs[0].result?.history)
        let losses = history.compactMap { $0.validation?.loss }
        XCTAssertEqual(stop.best, losses.min())
        XCTAssertEqual(losses.firstIndex(of: stop.best).map { $0 + 1 }, stop.bestEpoch)

        // The final parameters are best.safetensors', on every rank, and not the last epoch's.
        let best = try ModelFile.read(path: runs[0].directory + "/best.safetensors")
        for run in runs { XCTAssertEqual(run.parameters, best.parameters, "rank \(run.rank)") }
        let latest = try Checkpoints.latestValid(in: runs[0].directory) { XCTFail($0) }.0
        XCTAssertNotEqual(latest.parameters, best.parameters, "the last epoch's parameters are not the best")
        XCTAssertEqual(latest.position?.earlyStopping?.stoppedEpoch, stop.stoppedEpoch)
        XCTAssertEqual(try ModelFile.read(path: runs[0].directory + "/model.safetensors").parameters, best.parameters)
    }

    func testEarlyStoppingRestoresTheBestWithoutARunDirectory() throws {
        let config = try ConfigReader.parse(EarlyStoppingTests.config, file: "test")
        let data = try DataLoading.prepare(config, objective: try config.objective(), includeTest: true)
        let trainer = try Trainer(config: config, data: data, accelerator: CPUAccelerator(threads: 1),
                                  communicator: LocalCommunicator(), store: nil)
        guard case .finished(let result, _) = try trainer.run() else { return XCTFail("did not finish") }
        let stop = try XCTUnwrap(result.earlyStop)
        XCTAssertTrue(stop.restoredBestWeights)
        XCTAssertNil(stop.restoreProblem)
        // The parameters are the best epoch's: their validation loss is the best one.
        let validation = try XCTUnwrap(data.validation)
        XCTAssertEqual(trainer.evaluate(validation).loss, stop.best, accuracy: 1e-9 * max(1, abs(stop.best)))
    }

    func testAResumeWhoseBestFileIsGoneKeepsTheLastWeightsAndSaysWhy() throws {
        let uninterrupted = try train(ranks: 2, yaml: EarlyStoppingTests.config)
        let stop = try XCTUnwrap(uninterrupted[0].result?.earlyStop)
        let steps = EarlyStoppingTests.stepsPerEpoch * (stop.bestEpoch + 1) + 3
        let stopped = try train(ranks: 2, yaml: EarlyStoppingTests.config, stop: (rank: 0, afterSteps: steps))
        let (_, path) = try Checkpoints.latestValid(in: stopped[0].directory) { XCTFail($0) }
        try FileManager.default.removeItem(atPath: stopped[0].directory + "/best.safetensors")
        let resumed = try train(ranks: 2, yaml: EarlyStoppingTests.config, resumeFrom: path, directory: stopped[0].directory)
        XCTAssertEqual(resumed.compactMap(\.error), [])
        let outcome = try XCTUnwrap(resumed[0].result?.earlyStop)
        XCTAssertEqual(outcome.stoppedEpoch, stop.stoppedEpoch)
        XCTAssertFalse(outcome.restoredBestWeights)
        XCTAssertTrue(outcome.restoreProblem?.contains("best.safetensors") == true, outcome.restoreProblem ?? "no reason given")
        XCTAssertEqual(resumed[0].parameters, resumed[1].parameters, "every rank keeps the same weights")
        XCTAssertNotEqual(resumed[0].parameters, uninterrupted[0].parameters, "not the best epoch's")
    }

    func testEarlyStoppingResumedPartWayStopsWhereTheUninterruptedRunStops() throws {
        let uninterrupted = try train(ranks: 2, yaml: EarlyStoppingTests.config)
        let stop = try XCTUnwrap(uninterrupted[0].result?.earlyStop)
        // Stop after the best epoch and before the end: the checkpoint carries
        // the best value and the count of epochs without improvement.
        let steps = EarlyStoppingTests.stepsPerEpoch * (stop.bestEpoch + 1) + 3
        let stopped = try train(ranks: 2, yaml: EarlyStoppingTests.config, stop: (rank: 1, afterSteps: steps))
        guard case .stopped? = stopped[0].outcome else { return XCTFail("did not stop: \(stopped[0].error ?? "finished")") }
        let (_, path) = try Checkpoints.latestValid(in: stopped[0].directory) { XCTFail($0) }
        let resumed = try train(ranks: 2, yaml: EarlyStoppingTests.config, resumeFrom: path, directory: stopped[0].directory)
        XCTAssertEqual(resumed.compactMap(\.error), [])
        XCTAssertEqual(resumed[0].result?.earlyStop, stop)
        XCTAssertEqual(resumed[0].parameters, uninterrupted[0].parameters)
        XCTAssertEqual(resumed[1].parameters, uninterrupted[0].parameters)
    }
}

enum EarlyStoppingTests {
    /// A small spiral with a validation split that Adam at a high rate
    /// overfits within a few dozen epochs.
    static let config = """
        data:
          train: {format: synthetic, name: spiral, samples: 120, noise: 0.3, seed: 1}
          test: {format: synthetic, name: spiral, samples: 40, noise: 0.3, seed: 2}
          scale: standardize
          validation_split: 0.3
        model:
          layers:
            - dense: {units: 32, activation: tanh}
            - dense: {units: 32, activation: tanh}
            - dense: {units: 1, activation: sigmoid}
        loss: binary_crossentropy
        optimizer: {name: adam, learning_rate: 0.05}
        training:
          epochs: 60
          batch_size: 12
          seed: 7
          early_stopping: {monitor: val_loss, patience: 3, restore_best_weights: true}
        """
    /// 84 training samples in batches of 12.
    static let stepsPerEpoch = 7
}
