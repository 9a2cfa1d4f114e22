// The stored configuration is a file format: models and checkpoints keep it,
// and ranks hash it to agree. These strings are what the release before the
// typed configuration wrote for each preset (with `--epochs 1`), so a change
// of the stored form shows up here.

import Foundation
import XCTest
@testable import NNTraining

final class StoredConfigTests: XCTestCase {
    static let presetsAsStoredBefore: [String: String] = [
        "fashion-mnist": #"{"data":{"scale":"standardize","test":{"format":"idx","images":"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz","labels":"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"},"train":{"format":"idx","images":"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz","labels":"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"},"validation_split":0.1},"loss":"sparse_categorical_crossentropy","model":{"layers":[{"activation":"relu","kernel_initializer":"glorot_uniform","kind":"dense","units":256},{"activation":"relu","kernel_initializer":"glorot_uniform","kind":"dense","units":128},{"activation":"softmax","kernel_initializer":"glorot_uniform","kind":"dense","units":10}]},"optimizer":{"beta_1":0.9,"beta_2":0.999,"epsilon":1e-07,"learning_rate":0.001,"momentum":0,"name":"adam","nesterov":false,"rho":0.9,"schedule":{"alpha":0,"decay_rate":0.5,"name":"cosine","warmup_steps":0},"weight_decay":0},"task":"classification","training":{"batch_size":128,"epochs":1,"seed":7,"shuffle":true}}"#,
        "xor": #"{"data":{"scale":"none","test":{"format":"synthetic","name":"xor_gate","noise":0,"samples":4,"seed":0},"train":{"format":"synthetic","name":"xor_gate","noise":0,"samples":4,"seed":0},"validation_split":0},"loss":"binary_crossentropy","model":{"layers":[{"activation":"tanh","kernel_initializer":"glorot_uniform","kind":"dense","units":4},{"activation":"sigmoid","kernel_initializer":"glorot_uniform","kind":"dense","units":1}]},"optimizer":{"beta_1":0.9,"beta_2":0.999,"epsilon":1e-07,"learning_rate":0.05,"momentum":0,"name":"adam","nesterov":false,"rho":0.9,"schedule":{"alpha":0,"decay_rate":0.5,"name":"constant","warmup_steps":0},"weight_decay":0},"task":"classification","training":{"batch_size":4,"epochs":1,"seed":7,"shuffle":true}}"#,
        "perceptron": #"{"data":{"scale":"none","test":{"format":"synthetic","name":"gaussian","noise":0,"samples":200,"seed":2},"train":{"format":"synthetic","name":"gaussian","noise":0,"samples":400,"seed":1},"validation_split":0},"loss":"mse","model":{"layers":[{"activation":"step","kernel_initializer":"glorot_uniform","kind":"dense","units":1}]},"optimizer":{"beta_1":0.9,"beta_2":0.999,"epsilon":1e-07,"learning_rate":0.1,"momentum":0,"name":"sgd","nesterov":false,"rho":0.9,"schedule":{"alpha":0,"decay_rate":0.5,"name":"constant","warmup_steps":0},"weight_decay":0},"task":"classification","training":{"batch_size":1,"epochs":1,"seed":7,"shuffle":true}}"#,
        "spiral": #"{"data":{"scale":"none","test":{"format":"synthetic","name":"spiral","noise":0.1,"samples":500,"seed":2},"train":{"format":"synthetic","name":"spiral","noise":0.1,"samples":1000,"seed":1},"validation_split":0.2},"loss":"binary_crossentropy","model":{"layers":[{"activation":"tanh","kernel_initializer":"glorot_uniform","kind":"dense","units":32},{"activation":"tanh","kernel_initializer":"glorot_uniform","kind":"dense","units":32},{"activation":"sigmoid","kernel_initializer":"glorot_uniform","kind":"dense","units":1}]},"optimizer":{"beta_1":0.9,"beta_2":0.999,"epsilon":1e-07,"learning_rate":0.01,"momentum":0,"name":"adam","nesterov":false,"rho":0.9,"schedule":{"alpha":0,"decay_rate":0.5,"name":"constant","warmup_steps":0},"weight_decay":0},"task":"classification","training":{"batch_size":32,"epochs":1,"seed":7,"shuffle":true}}"#,
    ]

    /// The one addition since: Fashion-MNIST names its classes (`data.class_names`).
    func testPresetsAreStoredAsBefore() throws {
        for (name, stored) in Self.presetsAsStoredBefore {
            var config = try Presets.config(name)
            config.training.epochs = 1
            if name == "fashion-mnist" {
                XCTAssertEqual(config.data.classNames?.count, 10)
                XCTAssertEqual(config.data.classNames?.first, "T-shirt/top")
                config.data.classNames = nil
            }
            XCTAssertEqual(config.canonicalJSON, stored, name)
            XCTAssertEqual(try JSONDecoder().decode(RunConfig.self, from: Data(stored.utf8)), config, name)
        }
    }

    /// A source with `limit`, an initializer, a penalty and dropout, as the
    /// release before stored it. It reads back to the same configuration; the
    /// one difference on writing is that a penalty of 0 is no longer spelt out.
    func testAStoredConfigWithEveryLayerFieldReadsBack() throws {
        let stored = #"{"data":{"scale":"none","train":{"format":"synthetic","limit":50,"name":"gaussian","noise":0.1,"samples":64,"seed":3},"validation_split":0},"loss":"binary_crossentropy","model":{"layers":[{"activation":"relu","kernel_initializer":"he_normal","kind":"dense","l1":0.001,"l2":0,"units":4},{"kind":"dropout","rate":0.25},{"activation":"sigmoid","kernel_initializer":"glorot_uniform","kind":"dense","units":1}]},"optimizer":{"beta_1":0.9,"beta_2":0.999,"epsilon":1e-07,"learning_rate":0.001,"momentum":0,"name":"adam","nesterov":false,"rho":0.9,"schedule":{"alpha":0,"decay_rate":0.5,"name":"constant","warmup_steps":0},"weight_decay":0},"task":"classification","training":{"batch_size":8,"epochs":1,"seed":1,"shuffle":true}}"#
        let config = try JSONDecoder().decode(RunConfig.self, from: Data(stored.utf8))
        XCTAssertEqual(config.data.train, .synthetic(name: "gaussian", samples: 64, noise: 0.1, seed: 3, limit: 50))
        XCTAssertEqual(config.model.layers, [
            .dense(units: 4, activation: .relu, initializer: .heNormal, l1: 0.001, l2: 0),
            .dropout(rate: 0.25),
            .dense(units: 1, activation: .sigmoid, initializer: .glorotUniform, l1: 0, l2: 0),
        ])
        XCTAssertEqual(config.canonicalJSON, stored.replacingOccurrences(of: #""l2":0,"#, with: ""))
    }
}

/// metrics.jsonl is read by people's scripts: its lines keep their form;
/// new figures are only added.
final class MetricsLogFormatTests: XCTestCase {
    func testAnEpochLineKeepsEveryFieldOfTheEarlierForm() throws {
        // Written by the release before the events, for the spiral preset's first epoch.
        let before = #"{"epoch": 1, "loss": 0.700668, "accuracy": 0.55875, "val_loss": 0.70106, "val_accuracy": 0.535, "learning_rate": 0.01, "seconds": 0.001472, "samples_per_second": 543480}"#
        let training = Metrics(statistics: [0.700668 * 800, 0.55875 * 800, 0, 0], samples: 800, isClassifier: true, accuracyUnits: 1, outputs: 1)
        let validation = Metrics(statistics: [0.70106 * 200, 0.535 * 200, 0, 0], samples: 200, isClassifier: true, accuracyUnits: 1, outputs: 1)
        let record = EpochRecord(epoch: 1, globalStep: 25, worldSize: 1, training: training, validation: validation,
                                 steps: 25, stepsRun: 25, seconds: 0.001472, samplesPerSecond: 543480, learningRate: 0.01)
        let log = MetricsLog(runDirectory: "/nonexistent", warn: { _ in })
        let line = log.line(record)
        XCTAssertEqual(line, #"{"epoch": 1, "global_step": 25, "loss": 0.700668, "accuracy": 0.55875, "val_loss": 0.70106, "val_accuracy": 0.535, "learning_rate": 0.01, "seconds": 0.001472, "samples_per_second": 543480, "world_size": 1}"# + "\n")
        let old = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(before.utf8)) as? [String: Any])
        let new = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for (key, value) in old {
            XCTAssertEqual(new[key] as? Double, value as? Double, key)
        }

        var multiRank = record
        multiRank.worldSize = 2
        multiRank.allreduceMilliseconds = 0.088
        multiRank.allreduceWaitMilliseconds = .infinity
        multiRank.ranks = [RankTiming(stepMilliseconds: 8.5, waitMilliseconds: 1.25), RankTiming(stepMilliseconds: 12, waitMilliseconds: 0.5)]
        XCTAssertTrue(log.line(multiRank).hasSuffix(#""world_size": 2, "allreduce_ms": 0.088, "allreduce_call_ms_per_step": null, "rank_step_ms": [8.5, 12], "rank_wait_ms": [1.25, 0.5]}"# + "\n"),
                      log.line(multiRank))
    }
}
