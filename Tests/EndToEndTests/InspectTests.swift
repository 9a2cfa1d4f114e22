// `nntrain inspect` on the files a real run leaves, checked against the files
// read back independently.

import Foundation
import XCTest
import NNTraining
import SafeTensors

final class InspectTests: XCTestCase {
    /// Trains two epochs on a small CSV with named features and classes, a
    /// dropout layer and an L2 penalty; returns the run directory.
    func trainedRun(in dir: String) throws -> String {
        var rows = ["a,b,c,kind"]
        for i in 0..<48 {
            let k = i % 3
            rows.append("\(Double(k) + 0.1 * Double(i % 5)),\(Double(i % 7) * 0.3),\(Double(2 - k) * 1.5),\(["x", "y", "z"][k])")
        }
        write(rows.joined(separator: "\n") + "\n", "three.csv", in: dir)
        let config = write("""
            data:
              train: {format: csv, path: \(dir)/three.csv, label: kind}
              scale: standardize
            model:
              layers:
                - dense: {units: 8, activation: relu, l2: 0.001}
                - dropout: {rate: 0.25}
                - dense: {units: 3, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adam, learning_rate: 0.01}
            training: {epochs: 2, batch_size: 8, seed: 3}
            """, "three.yaml", in: dir)
        let run = dir + "/run"
        let outcome = try nntrain(["train", "--config", config, "--run-dir", run])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        return run
    }

    func inspectJSON(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let outcome = try nntrain(["inspect", "--json", path])
        XCTAssertEqual(outcome.status, 0, outcome.stderr, file: file, line: line)
        XCTAssertEqual(outcome.stdout.split(separator: "\n").count, 1, "one line", file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any], file: file, line: line)
    }

    /// The layers' shapes and statistics in `json` equal those of the tensors in `path`.
    func assertLayersMatch(_ json: [String: Any], _ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let stored = try SafeTensors.read(path: path)
        let layers = try XCTUnwrap(json["layers"] as? [[String: Any]], file: file, line: line)
        XCTAssertEqual(layers.map { $0["kind"] as? String }, ["dense", "dropout", "dense"], file: file, line: line)
        XCTAssertEqual(layers.map { $0["output"] as? Int }, [8, 8, 3], file: file, line: line)
        XCTAssertEqual(layers[1]["rate"] as? Double, 0.25, file: file, line: line)
        XCTAssertEqual(layers[0]["l2"] as? Double ?? 0, 0.001, accuracy: 1e-9, file: file, line: line)
        let expectedShapes: [(weight: [Int], bias: [Int])?] = [([8, 3], [8]), nil, ([3, 8], [3])]
        var total = 0
        for (layer, shapes) in zip(layers, expectedShapes) {
            guard let shapes else {
                XCTAssertEqual(layer["parameters"] as? Int, 0, file: file, line: line)
                continue
            }
            let weight = try XCTUnwrap(layer["weight"] as? [String: Any], file: file, line: line)
            let bias = try XCTUnwrap(layer["bias"] as? [String: Any], file: file, line: line)
            XCTAssertEqual(weight["shape"] as? [Int], shapes.weight, file: file, line: line)
            XCTAssertEqual(bias["shape"] as? [Int], shapes.bias, file: file, line: line)
            let count = shapes.weight.reduce(1, *) + shapes.bias.reduce(1, *)
            XCTAssertEqual(layer["parameters"] as? Int, count, file: file, line: line)
            total += count
            for tensor in [weight, bias] {
                let name = try XCTUnwrap(tensor["name"] as? String, file: file, line: line)
                let values = try XCTUnwrap(stored[name], "\(name) in the file", file: file, line: line).values.map(Double.init)
                XCTAssertEqual(tensor["count"] as? Int, values.count, name, file: file, line: line)
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
                let expected: [(String, Double)] = [
                    ("min", values.min()!), ("max", values.max()!), ("mean", mean), ("std", variance.squareRoot()),
                    ("zero_fraction", Double(values.filter { $0 == 0 }.count) / Double(values.count)),
                ]
                for (key, value) in expected {
                    let reported = try XCTUnwrap(tensor[key] as? Double, "\(name) \(key)", file: file, line: line)
                    XCTAssertEqual(reported, value, accuracy: 1e-12 * max(1, abs(value)), "\(name) \(key)", file: file, line: line)
                }
                XCTAssertEqual(tensor["non_finite"] as? Int, 0, name, file: file, line: line)
            }
        }
        XCTAssertEqual(total, 8 * 3 + 8 + 3 * 8 + 3)
        XCTAssertEqual(json["total_parameters"] as? Int, total, file: file, line: line)
        // Every parameter tensor of the file is accounted for.
        let parameterValues = stored.tensors.filter { !$0.name.hasPrefix("optimizer.") }.map(\.values.count).reduce(0, +)
        XCTAssertEqual(parameterValues, total, file: file, line: line)
    }

    func testInspectsTheFinalModelAndACheckpoint() throws {
        let dir = temporaryDirectory(self)
        let run = try trainedRun(in: dir)
        let modelPath = run + "/model.safetensors"
        let metadata = try SafeTensors.read(path: modelPath).metadata

        let model = try inspectJSON(modelPath)
        XCTAssertEqual(model["kind"] as? String, "model")
        XCTAssertTrue(model["position"] is NSNull, "a final model has no position")
        XCTAssertEqual(model["nntrain_version"] as? String, metadata["nntrain_version"])
        XCTAssertEqual(model["nntrain_version"] as? String, NNTrainVersion.string)
        XCTAssertEqual(model["input_size"] as? Int, 3)
        XCTAssertEqual(model["feature_names"] as? [String], ["a", "b", "c"])
        XCTAssertEqual(model["class_names"] as? [String], ["x", "y", "z"])
        XCTAssertEqual((model["scaler"] as? [String: Any])?["method"] as? String, "standardize")
        let config = try XCTUnwrap(model["config"] as? [String: Any])
        XCTAssertEqual(config["loss"] as? String, "sparse_categorical_crossentropy")
        XCTAssertEqual((config["optimizer"] as? [String: Any])?["name"] as? String, "adam")
        XCTAssertEqual((config["training"] as? [String: Any])?["epochs"] as? Int, 2)
        try assertLayersMatch(model, modelPath)

        let checkpoints = run + "/checkpoints"
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoints)
            .filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted()
        let checkpointPath = checkpoints + "/" + (try XCTUnwrap(names.first))
        let stored = try SafeTensors.read(path: checkpointPath).metadata
        let checkpoint = try inspectJSON(checkpointPath)
        XCTAssertEqual(checkpoint["kind"] as? String, "checkpoint")
        let position = try XCTUnwrap(checkpoint["position"] as? [String: Any])
        XCTAssertEqual(position["epochs_completed"] as? Int, Int(stored["epoch"] ?? ""))
        XCTAssertEqual(position["epoch"] as? Int, Int(stored["epoch"] ?? "").map { $0 + 1 })
        XCTAssertEqual(position["step_in_epoch"] as? Int, Int(stored["step_in_epoch"] ?? ""))
        XCTAssertEqual(position["global_step"] as? Int, Int(stored["global_step"] ?? ""))
        XCTAssertEqual(position["world_size"] as? Int, Int(stored["world_size"] ?? ""))
        XCTAssertEqual(position["optimizer_steps"] as? Int, Int(stored["optimizer_step"] ?? ""))
        XCTAssertEqual(position["global_step"] as? Int, 6, "48 samples in batches of 8: one epoch is 6 steps")
        XCTAssertEqual(position["optimizer_state"] as? [String], ["m", "v"])
        try assertLayersMatch(checkpoint, checkpointPath)

        // The table for people says the same.
        let text = try nntrain(["inspect", checkpointPath])
        XCTAssertEqual(text.status, 0, text.stderr)
        let out = text.stdout
        let words = out.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        XCTAssertTrue(out.hasPrefix("\(checkpointPath): checkpoint, written by nntrain \(NNTrainVersion.string)"), out)
        for fragment in ["Layer (type)", "Param #", "Total params: 59", "layers.0.weight", "[8, 3]", "dropout (rate 0.25)",
                         "relu, l2 0.001", "Position", "global step 6", "features 3: a, b, c",
                         "classes 3: x, y, z", "scaler standardize", "loss sparse_categorical_crossentropy"] {
            XCTAssertTrue(words.contains(fragment), "'\(fragment)' missing from:\n\(out)")
        }
        let dense = try XCTUnwrap(out.split(separator: "\n").first { $0.hasPrefix("layers.0 (dense)") })
        XCTAssertEqual(dense.split(separator: " ", omittingEmptySubsequences: true).last, "32", String(dense))
        let plain = try nntrain(["inspect", modelPath])
        XCTAssertTrue(plain.stdout.hasPrefix("\(modelPath): final model"), plain.stdout)
        XCTAssertFalse(plain.stdout.contains("Position"), plain.stdout)
    }

    func testCountsZerosAndNonFiniteValues() throws {
        let dir = temporaryDirectory(self)
        let run = try trainedRun(in: dir)
        var file = try SafeTensors.read(path: run + "/model.safetensors")
        let index = try XCTUnwrap(file.tensors.firstIndex { $0.name == "layers.1.weight" })
        file.tensors[index].values[0] = .nan
        file.tensors[index].values[1] = .infinity
        file.tensors[index].values[2] = 0
        file.tensors[index].values[3] = 0
        let path = dir + "/odd.safetensors"
        try file.write(to: path)
        let json = try inspectJSON(path)
        let layers = try XCTUnwrap(json["layers"] as? [[String: Any]])
        let weight = try XCTUnwrap(layers[2]["weight"] as? [String: Any])
        XCTAssertEqual(weight["non_finite"] as? Int, 2)
        XCTAssertEqual(weight["zero_fraction"] as? Double ?? 0, 2.0 / 24, accuracy: 1e-12)
        let finite = file.tensors[index].values.filter(\.isFinite).map(Double.init)
        XCTAssertEqual(weight["max"] as? Double ?? .nan, finite.max()!, accuracy: 1e-12)
        XCTAssertEqual(weight["mean"] as? Double ?? .nan, finite.reduce(0, +) / Double(finite.count), accuracy: 1e-12)
        let text = try nntrain(["inspect", path])
        let row = try XCTUnwrap(text.stdout.split(separator: "\n").first { $0.hasPrefix("layers.1.weight") })
        XCTAssertTrue(row.hasSuffix("8.3%            2"), String(row))
    }

    func testBadFilesAreOneLineNamingTheFile() throws {
        let dir = temporaryDirectory(self)
        let text = write("epoch,loss\n1,0.5\n", "notes.txt", in: dir)
        assertUserError(try nntrain(["inspect", text]), contains: [text, "not a safetensors file"])
        assertUserError(try nntrain(["inspect", "--json", dir + "/none.safetensors"]), contains: ["none.safetensors", "no such file"])
        assertUserError(try nntrain(["inspect", dir]), contains: [dir, "is a directory"])
        // Plain weights from another writer, and a cut-off file.
        let plain = dir + "/plain.safetensors"
        try SafeTensorsFile(tensors: [NamedTensor(name: "layers.0.weight", shape: [1, 2], values: [1, 2])]).write(to: plain)
        assertUserError(try nntrain(["inspect", plain]), contains: ["plain.safetensors", "not an nntrain model"])
        let run = try trainedRun(in: dir)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: run + "/model.safetensors"))
        let cut = dir + "/cut.safetensors"
        _ = FileManager.default.createFile(atPath: cut, contents: bytes.prefix(bytes.count - 10))
        assertUserError(try nntrain(["inspect", cut]), contains: ["cut.safetensors", "truncated"])
    }
}
