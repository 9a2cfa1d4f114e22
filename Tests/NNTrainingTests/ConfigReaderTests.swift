import XCTest
import NNCore
@testable import NNTraining

final class ConfigReaderTests: XCTestCase {
    let issueExample = """
        data:
          train: {format: csv, path: train.csv, label: species}
          test: {format: csv, path: test.csv, label: species}
          validation_split: 0.1
          scale: standardize
        model:
          layers:
            - dense: {units: 64, activation: relu}
            - dropout: {rate: 0.2}
            - dense: {units: 3, activation: softmax}
        loss: sparse_categorical_crossentropy
        optimizer: {name: rmsprop, learning_rate: 0.001}
        training: {epochs: 20, batch_size: 32, seed: 7}
        """

    func parse(_ text: String) throws -> RunConfig {
        try ConfigReader.parse(text, file: "c.yaml", baseDirectory: "/data")
    }

    func message(_ text: String) -> String {
        do {
            _ = try parse(text)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testTheDocumentedShapeParsesWithKerasDefaults() throws {
        let config = try parse(issueExample)
        XCTAssertEqual(config.data.train, .csv(path: "/data/train.csv", label: "species"))
        XCTAssertEqual(config.data.validationSplit, 0.1)
        XCTAssertEqual(config.data.scale, .standardize)
        XCTAssertEqual(config.layerSpecs, [
            .dense(units: 64, activation: .relu, initializer: .glorotUniform, l1: 0, l2: 0),
            .dropout(rate: 0.2),
            .dense(units: 3, activation: .softmax, initializer: .glorotUniform, l1: 0, l2: 0),
        ])
        XCTAssertEqual(config.loss, .sparseCategoricalCrossEntropy)
        XCTAssertEqual(config.task, .classification)
        XCTAssertEqual(config.optimizer.rule, .rmsprop(rho: 0.9, momentum: 0, epsilon: 1e-7))
        XCTAssertEqual(config.optimizer.learningRate, 0.001)
        XCTAssertEqual(config.training.epochs, 20)
        XCTAssertEqual(config.training.batchSize, 32)
        XCTAssertEqual(config.training.seed, 7)
    }

    func testOptimizerDefaultsFollowKeras() throws {
        let sgd = try parse(issueExample.replacingOccurrences(of: "{name: rmsprop, learning_rate: 0.001}", with: "sgd"))
        XCTAssertEqual(sgd.optimizer.learningRate, 0.01)
        XCTAssertEqual(sgd.optimizer.rule, .sgd(momentum: 0, nesterov: false))
        let adamw = try parse(issueExample.replacingOccurrences(of: "{name: rmsprop, learning_rate: 0.001}", with: "{name: adamw}"))
        XCTAssertEqual(adamw.optimizer.weightDecay, 0.004)
        XCTAssertEqual(adamw.optimizer.rule, .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-7))
        let nesterov = try parse(issueExample.replacingOccurrences(
            of: "{name: rmsprop, learning_rate: 0.001}",
            with: "{name: sgd, momentum: 0.9, nesterov: true, schedule: {name: cosine, decay_steps: 100, warmup_steps: 10}}"))
        XCTAssertEqual(nesterov.optimizer.rule, .sgd(momentum: 0.9, nesterov: true))
        XCTAssertEqual(nesterov.optimizer.learningRateSchedule(totalSteps: 5000),
                       LearningRateSchedule(initialRate: 0.01, decay: .cosine(steps: 100, alpha: 0), warmupSteps: 10))
        let wholeRun = try parse(issueExample.replacingOccurrences(
            of: "{name: rmsprop, learning_rate: 0.001}", with: "{name: adam, schedule: {name: cosine, warmup_steps: 10}}"))
        XCTAssertEqual(wholeRun.optimizer.learningRateSchedule(totalSteps: 5000).decay, .cosine(steps: 4990, alpha: 0))
    }

    func testUnknownKeysAreRejectedWithTheClosestName() {
        XCTAssertEqual(message(issueExample.replacingOccurrences(of: "epochs: 20", with: "epoch: 20")),
                       "c.yaml:13: training.epoch: unknown key 'epoch'; did you mean 'epochs'?")
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "validation_split", with: "validation_spilt"))
            .hasPrefix("c.yaml:4: data.validation_spilt: unknown key 'validation_spilt'; did you mean 'validation_split'?"))
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "activation: relu", with: "activation: rlu"))
            .contains("did you mean 'relu'?"))
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "learning_rate: 0.001", with: "rho: 0.9, beta_1: 0.8"))
            .contains("optimizer.beta_1: rmsprop has no 'beta_1'"))
    }

    func testValuesAreChecked() {
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "batch_size: 32", with: "batch_size: -1"))
            .contains("c.yaml:13: training.batch_size: must be a positive integer (got -1)"))
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "learning_rate: 0.001", with: "learning_rate: 0"))
            .contains("optimizer.learning_rate: must be a positive number"))
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "rate: 0.2", with: "rate: 1.5"))
            .contains("model.layers[1].dropout.rate"))
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "units: 64", with: "units: many"))
            .contains("'many' is not an integer"))
        XCTAssertTrue(message("data: [1, 2\n").contains("c.yaml"))
    }

    func testClassNamesNameEveryClassOnce() throws {
        let named = issueExample.replacingOccurrences(of: "scale: standardize", with: "scale: standardize\n  class_names: [setosa, versicolor, virginica]")
        XCTAssertEqual(try parse(named).data.classNames, ["setosa", "versicolor", "virginica"])
        XCTAssertEqual(message(named.replacingOccurrences(of: ", virginica]", with: "]")),
                       "c.yaml:6: data.class_names: 2 names for the 3 classes of the output layer; give one name per class")
        XCTAssertEqual(message(named.replacingOccurrences(of: "virginica]", with: "setosa]")),
                       "c.yaml:6: data.class_names: 'setosa' is given twice; every class needs its own name")
        XCTAssertEqual(message(named.replacingOccurrences(of: "[setosa, versicolor, virginica]", with: "setosa")),
                       "c.yaml:6: data.class_names: expected a list of names, one per class: [cat, dog]")
    }

    func testLossMustFitTheOutputLayer() {
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "units: 3, activation: softmax", with: "units: 3, activation: sigmoid"))
            .contains("needs a softmax output layer"))
        XCTAssertTrue(message(issueExample.replacingOccurrences(of: "sparse_categorical_crossentropy", with: "binary_crossentropy"))
            .contains("needs a sigmoid output layer"))
    }

    func testPresetsParseAndCanonicalFormRoundTrips() throws {
        for name in Presets.names {
            let config = try Presets.config(name)
            let decoded = try JSONDecoder().decode(RunConfig.self, from: Data(config.canonicalJSON.utf8))
            XCTAssertEqual(decoded, config, name)
            XCTAssertEqual(decoded.fingerprint, config.fingerprint)
        }
        XCTAssertNotEqual(try Presets.config("xor").fingerprint, try Presets.config("spiral").fingerprint)
        XCTAssertThrowsError(try Presets.config("fashion")) { XCTAssertTrue("\($0)".contains("did you mean 'fashion-mnist'?")) }
    }

    func testAQuotedNumberIsATypeError() {
        let quoted = issueExample.replacingOccurrences(of: "units: 64", with: "units: \"64\"")
        XCTAssertTrue(message(quoted).hasPrefix("c.yaml:8: model.layers[0].dense.units: expected an integer, got the quoted string '64'"),
                      message(quoted))
        let single = issueExample.replacingOccurrences(of: "learning_rate: 0.001", with: "learning_rate: '0.001'")
        XCTAssertTrue(message(single).contains("optimizer.learning_rate: expected a number, got the quoted string '0.001'"), message(single))
        let flag = issueExample.replacingOccurrences(of: "seed: 7}", with: "seed: 7, shuffle: \"true\"}")
        XCTAssertTrue(message(flag).contains("training.shuffle: expected true or false, got the quoted string 'true'"), message(flag))
        XCTAssertEqual(message(issueExample), "no error", "the unquoted example parses")
    }

    func testDataSourcesAndLayersAreTyped() throws {
        let config = try parse(issueExample)
        XCTAssertEqual(config.data.test, .csv(path: "/data/test.csv", label: "species"))
        XCTAssertEqual(config.model.layers, [
            .dense(units: 64, activation: .relu, initializer: .glorotUniform, l1: 0, l2: 0),
            .dropout(rate: 0.2),
            .dense(units: 3, activation: .softmax, initializer: .glorotUniform, l1: 0, l2: 0),
        ])
        let synthetic = try parse("""
            data: {train: {format: synthetic, name: spiral}}
            model: {layers: [{dense: {units: 1, activation: sigmoid}}]}
            loss: binary_crossentropy
            """)
        XCTAssertEqual(synthetic.data.train, .synthetic(name: "spiral", samples: 500, noise: 0, seed: 0))
        XCTAssertEqual(synthetic.training.epochs, 1)
        XCTAssertEqual(synthetic.training.batchSize, 32)
        XCTAssertEqual(synthetic.training.seed, 1)
        XCTAssertTrue(synthetic.training.shuffle)
    }

    /// The stored form keeps the keys older files were written with.
    func testTheStoredFormSpellsSourcesAndLayersAsBefore() throws {
        let config = try parse(issueExample)
        let json = config.canonicalJSON
        XCTAssertTrue(json.contains(#""train":{"format":"csv","label":"species","path":"/data/train.csv"}"#), json)
        XCTAssertTrue(json.contains(#"{"activation":"relu","kernel_initializer":"glorot_uniform","kind":"dense","units":64}"#), json)
        XCTAssertTrue(json.contains(#"{"kind":"dropout","rate":0.2"#), json)
        let old = json.replacingOccurrences(of: #""units":64}"#, with: #""l1":0.5,"units":64}"#)
        let decoded = try JSONDecoder().decode(RunConfig.self, from: Data(old.utf8))
        XCTAssertEqual(decoded.model.layers[0], .dense(units: 64, activation: .relu, initializer: .glorotUniform, l1: 0.5, l2: 0))
    }
}
