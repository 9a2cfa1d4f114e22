// The real binary trains, evaluates and predicts on real files.

import Foundation
import XCTest

final class TrainingTests: XCTestCase {
    func testHelpExitsCleanly() throws {
        let outcome = try nntrain(["--help"])
        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stdout.contains("train"), outcome.stdout)
    }

    func testXORPresetLearnsXORAndLeavesModelAndMetrics() throws {
        let dir = temporaryDirectory(self)
        let run = dir + "/xor"
        let outcome = try nntrain(["train", "--preset", "xor", "--run-dir", run])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("Epoch 300/300"), outcome.stdout)
        let lines = metricsLines(run)
        XCTAssertEqual(lines.count, 300)
        XCTAssertEqual(lines.last?["epoch"] as? Int, 300)
        for key in ["loss", "accuracy", "samples_per_second"] { XCTAssertNotNil(lines.last?[key], key) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/model.safetensors"))

        let evaluation = try nntrain(["evaluate", "--model", run + "/model.safetensors", "--json"])
        XCTAssertEqual(evaluation.status, 0, evaluation.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["accuracy"] as? Double, 1.0, evaluation.stdout)
        XCTAssertNotNil(json["loss"])

        let input = write("x,y\n0,0\n0,1\n1,0\n1,1\n", "gates.csv", in: dir)
        let prediction = try nntrain(["predict", "--model", run + "/model.safetensors", "--input", input])
        XCTAssertEqual(prediction.status, 0, prediction.stderr)
        let rows = prediction.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: ",")[0] }
        XCTAssertEqual(rows, ["0", "1", "1", "0"], prediction.stdout)
    }

    func testPerceptronPresetSeparatesTwoGaussians() throws {
        let dir = temporaryDirectory(self)
        let outcome = try nntrain(["train", "--preset", "perceptron", "--run-dir", dir + "/p"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let evaluation = try nntrain(["evaluate", "--model", dir + "/p/model.safetensors", "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(json["accuracy"] as? Double), 0.95, evaluation.stdout)
        XCTAssertFalse(outcome.stdout.contains("perceptron"), "two separable clouds need no note: \(outcome.stdout)")
    }

    /// A one-unit perceptron on a logic gate's truth table.
    func perceptronConfig(gate: String, activation: String = "step", epochs: Int, in dir: String) -> String {
        write("""
            data:
              train: {format: synthetic, name: \(gate), samples: 4}
            model:
              layers:
                - dense: {units: 1, activation: \(activation)}
            loss: mse
            optimizer: {name: sgd, learning_rate: 0.1}
            training: {epochs: \(epochs), batch_size: 1, seed: 7}
            """, "\(gate)-\(activation).yaml", in: dir)
    }

    func occurrences(of text: String, in output: String) -> Int { output.components(separatedBy: text).count - 1 }

    func testAPerceptronOnXORIsToldOnceThatTheDataIsNotLinearlySeparable() throws {
        let dir = temporaryDirectory(self)
        for activation in ["step", "sign"] {
            let config = perceptronConfig(gate: "xor_gate", activation: activation, epochs: 6, in: dir)
            let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/xor-" + activation])
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertEqual(occurrences(of: "not linearly separable", in: outcome.stdout), 1, outcome.stdout)
            let note = try XCTUnwrap(outcome.stdout.split(separator: "\n").first { $0.contains("not linearly separable") })
            XCTAssertTrue(note.hasPrefix("the perceptron still misclassifies "), String(note))
            XCTAssertTrue(note.contains(" of 4 training samples"), String(note))
            XCTAssertTrue(note.contains("no line puts each class on its own side"), String(note))
            XCTAssertTrue(note.contains("add a hidden layer"), String(note))
            // Right after the first epoch's line.
            let lines = outcome.stdout.split(separator: "\n").map(String.init)
            let index = try XCTUnwrap(lines.firstIndex(of: String(note)))
            XCTAssertEqual(lines[index - 2], "Epoch 1/6", outcome.stdout)
            XCTAssertFalse(outcome.stdout.contains("more epochs"), outcome.stdout)
        }
    }

    func testAPerceptronOnANDIsNotToldItCannotLearnIt() throws {
        let dir = temporaryDirectory(self)
        let config = perceptronConfig(gate: "and_gate", epochs: 30, in: dir)
        let learned = try nntrain(["train", "--config", config, "--run-dir", dir + "/and"])
        XCTAssertEqual(learned.status, 0, learned.stderr)
        XCTAssertFalse(learned.stdout.contains("linearly separable"), learned.stdout)
        XCTAssertFalse(learned.stdout.contains("the perceptron"), "it learned AND: \(learned.stdout)")
        XCTAssertTrue(learned.stdout.contains("accuracy: 1.0000"), learned.stdout)

        // Stopped before it converges: one line at the end, that more epochs may help.
        let short = try nntrain(["train", "--config", config, "--run-dir", dir + "/and-short", "--epochs", "2"])
        XCTAssertEqual(short.status, 0, short.stderr)
        XCTAssertFalse(short.stdout.contains("not linearly separable"), short.stdout)
        XCTAssertEqual(occurrences(of: "more epochs may get there", in: short.stdout), 1, short.stdout)
    }

    /// Three classes named in a CSV, a validation split, a test file, scaling
    /// and dropout: every part of the config shape the README shows.
    func testCSVClassificationWithNamedLabels() throws {
        let dir = temporaryDirectory(self)
        func table(_ count: Int, seed: Int) -> String {
            var lines = ["length,width,species"]
            var state = UInt64(seed)
            func next() -> Double {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Double(state >> 11) / Double(1 << 53)
            }
            let centers = [("setosa", 1.0, 5.0), ("versicolor", 5.0, 1.0), ("virginica", 9.0, 5.0)]
            for i in 0..<count {
                let (name, cx, cy) = centers[i % 3]
                lines.append(String(format: "%.3f,%.3f,%@", 100 * (cx + next() - 0.5), cy + next() - 0.5, name))
            }
            return lines.joined(separator: "\n") + "\n"
        }
        write(table(300, seed: 1), "train.csv", in: dir)
        write(table(90, seed: 2), "test.csv", in: dir)
        let config = write("""
            data:
              train: {format: csv, path: train.csv, label: species}
              test: {format: csv, path: test.csv, label: species}
              validation_split: 0.1
              scale: standardize
            model:
              layers:
                - dense: {units: 16, activation: relu}
                - dropout: {rate: 0.2}
                - dense: {units: 3, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: rmsprop, learning_rate: 0.01}
            training: {epochs: 20, batch_size: 30, seed: 7}
            """, "iris-like.yaml", in: dir)
        let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/run"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("val_accuracy"), outcome.stdout)
        let last = try XCTUnwrap(metricsLines(dir + "/run").last)
        XCTAssertGreaterThan(try XCTUnwrap(last["val_accuracy"] as? Double), 0.95)

        let evaluation = try nntrain(["evaluate", "--model", dir + "/run/model.safetensors", "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(json["accuracy"] as? Double), 0.95, evaluation.stdout)

        // Unscaled raw rows in, class names out: the stored scaler is applied.
        let input = write("length,width\n100,5\n500,1\n900,5\n", "new.csv", in: dir)
        let output = dir + "/predictions.csv"
        let prediction = try nntrain(["predict", "--model", dir + "/run/model.safetensors", "--input", input, "--output", output])
        XCTAssertEqual(prediction.status, 0, prediction.stderr)
        let text = try String(contentsOfFile: output, encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.first, "prediction,p_setosa,p_versicolor,p_virginica")
        XCTAssertEqual(lines.dropFirst().map { $0.split(separator: ",")[0] }, ["setosa", "versicolor", "virginica"], text)
    }

    func testCSVRegressionReportsMSEAndMAE() throws {
        let dir = temporaryDirectory(self)
        var rows = ["x1,x2,target"]
        for i in 0..<200 {
            let a = Double(i % 20) / 10 - 1, b = Double(i / 20) / 5 - 1
            rows.append("\(a),\(b),\(2 * a - 3 * b + 0.5)")
        }
        write(rows.joined(separator: "\n"), "train.csv", in: dir)
        let config = write("""
            data:
              train: {format: csv, path: train.csv, label: target}
              test: {format: csv, path: train.csv, label: target}
            model:
              layers:
                - dense: {units: 1}
            loss: mse
            optimizer: {name: sgd, learning_rate: 0.1, momentum: 0.9}
            training: {epochs: 40, batch_size: 20}
            """, "linear.yaml", in: dir)
        let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/run"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let evaluation = try nntrain(["evaluate", "--model", dir + "/run/model.safetensors", "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        XCTAssertNil(json["accuracy"])
        XCTAssertLessThan(try XCTUnwrap(json["mse"] as? Double), 1e-3, evaluation.stdout)
        XCTAssertLessThan(try XCTUnwrap(json["mae"] as? Double), 3e-2, evaluation.stdout)
    }

    /// Fashion-MNIST smoke test on a subset of the real data.
    func testFashionMNISTSubsetLearns() throws {
        let directory = try fashionMNISTDirectory()
        let dir = temporaryDirectory(self)
        let config = write("""
            data:
              train: {format: idx, images: \(directory)/train-images-idx3-ubyte.gz, labels: \(directory)/train-labels-idx1-ubyte.gz, limit: 3000}
              test: {format: idx, images: \(directory)/t10k-images-idx3-ubyte.gz, labels: \(directory)/t10k-labels-idx1-ubyte.gz, limit: 1000}
              scale: minmax
            model:
              layers:
                - dense: {units: 64, activation: relu}
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adam, learning_rate: 0.002}
            training: {epochs: 3, batch_size: 64, seed: 3}
            """, "fashion-small.yaml", in: dir)
        let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/run"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let evaluation = try nntrain(["evaluate", "--model", dir + "/run/model.safetensors", "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(json["accuracy"] as? Double), 0.7, evaluation.stdout)
    }
}
