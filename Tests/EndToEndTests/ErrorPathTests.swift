// Bad input: one clear line naming the place and the fix, exit status 2,
// never a stack trace. Every case runs the real binary.

import Foundation
import XCTest
import NNTraining

final class ErrorPathTests: XCTestCase {
    /// A valid config around a CSV file; `edit` changes parts of it.
    func csvConfig(train: String, label: String = "species", layers: String? = nil, loss: String = "sparse_categorical_crossentropy",
                   training: String = "{epochs: 1, batch_size: 4, seed: 1}", optimizer: String = "{name: adam, learning_rate: 0.01}") -> String {
        """
        data:
          train: {format: csv, path: \(train), label: \(label)}
        model:
          layers:
        \(layers ?? "    - dense: {units: 4, activation: relu}\n    - dense: {units: 3, activation: softmax}")
        loss: \(loss)
        optimizer: \(optimizer)
        training: \(training)
        """
    }

    let goodCSV = """
        x1,x2,species
        1.0,2.0,setosa
        1.5,2.5,setosa
        5.0,1.0,virginica
        5.5,1.5,virginica
        3.0,3.0,versicolor
        3.5,3.5,versicolor
        """

    func testMissingDataFile() throws {
        let dir = temporaryDirectory(self)
        let config = write(csvConfig(train: "absent.csv"), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config, "--run-dir", dir + "/run"]), contains: ["absent.csv"])
    }

    func testMissingConfigFile() throws {
        assertUserError(try nntrain(["train", "--config", "/nonexistent/run.yaml"]), contains: ["/nonexistent/run.yaml", "no such config file"])
    }

    func testUnknownKeySuggestsTheClosestName() throws {
        let dir = temporaryDirectory(self)
        write(goodCSV, "train.csv", in: dir)
        let text = csvConfig(train: "train.csv").replacingOccurrences(of: "training:", with: "trainig:")
        let config = write(text, "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config]), contains: ["run.yaml:9", "trainig", "did you mean 'training'"])

        let nested = write(csvConfig(train: "train.csv", training: "{epohcs: 2}"), "nested.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", nested]), contains: ["nested.yaml:9", "training.epohcs", "did you mean 'epochs'"])
    }

    func testNonNumericCellNamesFileLineAndColumn() throws {
        let dir = temporaryDirectory(self)
        write(goodCSV.replacingOccurrences(of: "1.5,2.5,setosa", with: "1.5,n/a,setosa"), "train.csv", in: dir)
        let config = write(csvConfig(train: "train.csv"), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config, "--run-dir", dir + "/run"]),
                        contains: ["train.csv:3", "x2", "n/a"])
    }

    func testRaggedRow() throws {
        let dir = temporaryDirectory(self)
        write(goodCSV.replacingOccurrences(of: "5.0,1.0,virginica", with: "5.0,1.0,2.0,virginica"), "train.csv", in: dir)
        let config = write(csvConfig(train: "train.csv"), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config, "--run-dir", dir + "/run"]), contains: ["train.csv:4", "4 fields"])
    }

    func testLabelOutsideTheOutputClasses() throws {
        let dir = temporaryDirectory(self)
        write("a,b,label\n0,1,0\n1,0,1\n1,1,4\n", "train.csv", in: dir)
        let config = write(csvConfig(train: "train.csv", label: "label"), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config, "--run-dir", dir + "/run"]),
                        contains: ["train.csv:4", "label 4", "3 classes"])
    }

    func testLossThatDoesNotFitTheOutputActivation() throws {
        let dir = temporaryDirectory(self)
        write(goodCSV, "train.csv", in: dir)
        let layers = "    - dense: {units: 4, activation: relu}\n    - dense: {units: 3, activation: sigmoid}"
        let config = write(csvConfig(train: "train.csv", layers: layers), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config]), contains: ["run.yaml:7", "loss", "needs a softmax output layer"])
    }

    func testOutputLayerThatDoesNotFitTheData() throws {
        let dir = temporaryDirectory(self)
        write("a,b,y\n0,1,0.5\n1,0,1.5\n1,1,2.5\n", "train.csv", in: dir)
        let layers = "    - dense: {units: 4, activation: relu}\n    - dense: {units: 3, activation: linear}"
        let config = write(csvConfig(train: "train.csv", label: "y", layers: layers, loss: "mse"), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config, "--run-dir", dir + "/run"]), contains: ["output layer has 3 units"])
    }

    func testStepInsideABackpropNetwork() throws {
        let dir = temporaryDirectory(self)
        write(goodCSV, "train.csv", in: dir)
        let layers = "    - dense: {units: 4, activation: step}\n    - dense: {units: 3, activation: softmax}"
        let config = write(csvConfig(train: "train.csv", layers: layers), "run.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", config]),
                        contains: ["run.yaml:5", "model.layers[0].dense.activation", "no useful derivative"])
    }

    func testNonPositiveBatchSizeAndLearningRate() throws {
        let dir = temporaryDirectory(self)
        write(goodCSV, "train.csv", in: dir)
        let zeroBatch = write(csvConfig(train: "train.csv", training: "{batch_size: 0}"), "a.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", zeroBatch]), contains: ["a.yaml:9", "training.batch_size", "positive"])
        let negativeRate = write(csvConfig(train: "train.csv", optimizer: "{name: sgd, learning_rate: -0.1}"), "b.yaml", in: dir)
        assertUserError(try nntrain(["train", "--config", negativeRate]), contains: ["b.yaml:8", "optimizer.learning_rate", "positive"])
        assertUserError(try nntrain(["train", "--preset", "xor", "--batch-size", "0"]), contains: ["--batch-size", "positive"])
        assertUserError(try nntrain(["train", "--preset", "xor", "--batch-size=-3"]), contains: ["--batch-size"])
        assertUserError(try nntrain(["train", "--preset", "xor", "--learning-rate", "0"]), contains: ["--learning-rate", "positive"])
        assertUserError(try nntrain(["train", "--preset", "nope"]), contains: ["unknown preset 'nope'"])
    }

    func testIDXWithWrongMagicAndTruncated() throws {
        let dir = temporaryDirectory(self)
        // A valid 2-image label file and a 2-image, 2×2 image file…
        let labels: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 2, 1, 0]
        let images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2] + [UInt8](repeating: 7, count: 8)
        FileManager.default.createFile(atPath: dir + "/labels.idx", contents: Data(labels))
        FileManager.default.createFile(atPath: dir + "/images.idx", contents: Data(images))
        // …then truncated: the header promises 2 images but one is missing.
        FileManager.default.createFile(atPath: dir + "/short.idx", contents: Data(images.prefix(20)))
        func config(_ imageFile: String, _ labelFile: String) -> String {
            write("""
                data:
                  train: {format: idx, images: \(imageFile), labels: \(labelFile)}
                model:
                  layers:
                    - dense: {units: 2, activation: softmax}
                loss: sparse_categorical_crossentropy
                """, "idx-\(imageFile)-\(labelFile).yaml", in: dir)
        }
        assertUserError(try nntrain(["train", "--config", config("labels.idx", "images.idx"), "--run-dir", dir + "/a"]),
                        contains: ["labels.idx", "magic"])
        assertUserError(try nntrain(["train", "--config", config("short.idx", "labels.idx"), "--run-dir", dir + "/b"]),
                        contains: ["short.idx", "truncated"])
    }

    func testCUDARequestedWithoutAGPU() throws {
        let drivers = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/local/cuda/lib64/libcuda.so.1"]
        if drivers.contains(where: FileManager.default.fileExists) { throw XCTSkip("an NVIDIA driver is installed here") }
        assertUserError(try nntrain(["train", "--preset", "xor", "--device", "cuda"]),
                        contains: ["--device cuda", "libcuda.so.1 not found", "use --device cpu"])
        // auto falls back to the CPU without a word of complaint.
        let dir = temporaryDirectory(self)
        let auto = try nntrain(["train", "--preset", "xor", "--epochs", "2", "--device", "auto", "--run-dir", dir + "/a"])
        XCTAssertEqual(auto.status, 0, auto.stderr)
        XCTAssertEqual(auto.stderr, "")
        XCTAssertTrue(auto.stdout.contains("compute: cpu"), auto.stdout)
    }

    func testEvaluateAndPredictRejectBadInput() throws {
        let dir = temporaryDirectory(self)
        assertUserError(try nntrain(["evaluate", "--model", dir + "/none.safetensors"]), contains: ["none.safetensors", "no such file"])
        XCTAssertEqual(try nntrain(["train", "--preset", "xor", "--epochs", "1", "--run-dir", dir + "/xor"]).status, 0)
        let model = dir + "/xor/model.safetensors"
        let wide = write("a,b,c\n1,2,3\n", "wide.csv", in: dir)
        assertUserError(try nntrain(["predict", "--model", model, "--input", wide]),
                        contains: ["wide.csv", "3 feature columns but the model takes 2"])
        let bad = write("a,b\n1,2\n1,zz\n", "bad.csv", in: dir)
        assertUserError(try nntrain(["predict", "--model", model, "--input", bad]), contains: ["bad.csv:3", "'zz'"])
        // A config without a test set has nothing to evaluate on.
        write(goodCSV, "train.csv", in: dir)
        let config = write(csvConfig(train: "train.csv"), "notest.yaml", in: dir)
        assertUserError(try nntrain(["evaluate", "--model", model, "--config", config]), contains: ["notest.yaml", "no data.test"])
        // Not a model file at all.
        let junk = write("hello", "junk.safetensors", in: dir)
        assertUserError(try nntrain(["evaluate", "--model", junk]), contains: ["junk.safetensors", "truncated"])
    }

    func testUnknownCommandLineOption() throws {
        assertUserError(try nntrain(["train", "--epochz", "3"]), contains: ["--epochz"])
    }
}

/// The command line's edges: what a person types wrong, and what they expect to work.
final class CommandLineEdgeTests: XCTestCase {
    func testVersionAndAMisspeltSubcommand() throws {
        let version = try nntrain(["--version"])
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertEqual(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines), NNTrainVersion.string)
        assertUserError(try nntrain(["evalute", "--model", "m.safetensors"]),
                        contains: ["unknown command 'evalute'", "did you mean 'evaluate'?"])
    }

    func testNegativeFlagValuesGetTheRangeError() throws {
        assertUserError(try nntrain(["train", "--learning-rate", "-1"]), contains: ["--learning-rate: must be a positive number"])
        assertUserError(try nntrain(["train", "--epochs", "-2"]), contains: ["--epochs: must be a positive integer (got -2)"])
    }

    func testHelpShowsResumeWithAnOptionalCheckpoint() throws {
        let help = try nntrain(["train", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--resume <checkpoint>"), help.stdout)
        XCTAssertFalse(help.stdout.contains("resume-latest"), "the internal flag stays hidden: \(help.stdout)")
    }

    /// Columns are taken by name: a shuffled file predicts the same, a missing
    /// or unexpected column is named.
    func testPredictMatchesColumnsByName() throws {
        let dir = temporaryDirectory(self)
        var rows = ["a,b,c,label"]
        for i in 0..<60 {
            let x = Double(i % 10) / 10, y = Double(i % 7) / 7, z = Double(i % 3) / 3
            rows.append("\(x),\(y),\(z),\(x + y > 0.9 ? "high" : "low")")
        }
        write(rows.joined(separator: "\n") + "\n", "train.csv", in: dir)
        let config = write("""
            data: {train: {format: csv, path: train.csv, label: label}, scale: standardize}
            model: {layers: [{dense: {units: 4, activation: tanh}}, {dense: {units: 2, activation: softmax}}]}
            loss: sparse_categorical_crossentropy
            training: {epochs: 3, batch_size: 8, seed: 1}
            """, "run.yaml", in: dir)
        let trained = try nntrain(["train", "--config", config, "--run-dir", dir + "/run"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let model = dir + "/run/model.safetensors"

        write("a,b,c\n0.1,0.2,0.3\n0.9,0.8,0.1\n", "ordered.csv", in: dir)
        write("c,label,a,b\n0.3,low,0.1,0.2\n0.1,high,0.9,0.8\n", "shuffled.csv", in: dir)
        let ordered = try nntrain(["predict", "--model", model, "--input", dir + "/ordered.csv"])
        let shuffled = try nntrain(["predict", "--model", model, "--input", dir + "/shuffled.csv"])
        XCTAssertEqual(ordered.status, 0, ordered.stderr)
        XCTAssertEqual(ordered.stdout.split(separator: "\n").count, 3, ordered.stdout)
        XCTAssertEqual(shuffled.stdout, ordered.stdout, "the same rows in another column order predict the same")

        write("a,c,d\n0.1,0.3,7\n", "wrong.csv", in: dir)
        assertUserError(try nntrain(["predict", "--model", model, "--input", dir + "/wrong.csv"]),
                        contains: ["wrong.csv:1", "missing column 'b'", "unexpected column 'd'"])
    }
}
