// The record a run leaves: its files agree with each other and with the
// console and survive a resume; a directory holding an earlier run is not
// mixed into, and damaged records cost the report a note, never a crash.

import Foundation
import XCTest

final class RunRecordTests: XCTestCase {
    func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], path)
    }

    func csvRows(_ path: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = try XCTUnwrap(lines.first)
        return lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0)) }
    }

    func testTheRecordOfARunAndOfItsResume() throws {
        let dir = temporaryDirectory(self), run = dir + "/run"
        let first = try nntrain(["train", "--preset", "spiral", "--epochs", "3", "--run-dir", run, "--no-report"])
        XCTAssertEqual(first.status, 0, first.stderr)
        // metrics.csv holds metrics.jsonl's figures, column by column.
        let lines = metricsLines(run)
        let rows = try csvRows(run + "/metrics.csv")
        XCTAssertEqual(rows.count, 3)
        for (line, row) in zip(lines, rows) {
            for key in ["epoch", "global_step", "loss", "val_accuracy", "samples_per_second", "world_size"] {
                XCTAssertEqual(Double(row[key] ?? ""), (line[key] as? NSNumber)?.doubleValue, key)
            }
        }
        var record = try json(run + "/run.json")
        XCTAssertEqual(record["exit_reason"] as? String, "finished")
        XCTAssertEqual(record["world_size"] as? Int, 1)
        let started = try XCTUnwrap(record["start_time"] as? String)
        var results = try json(run + "/results.json")
        XCTAssertEqual(results["epochs_run"] as? Int, 3)
        let confusion = try XCTUnwrap(results["confusion_matrix"] as? [String: Any])
        let counts = try XCTUnwrap(confusion["counts"] as? [[Int]])
        XCTAssertEqual(counts.flatMap { $0 }.reduce(0, +), 500, "every test sample counted once")
        let correct = counts[0][0] + counts[1][1]
        let accuracy = try XCTUnwrap((results["test"] as? [String: Any])?["accuracy"] as? Double)
        XCTAssertEqual(Double(correct) / 500, accuracy, accuracy: 1e-9, "the diagonal is the test accuracy")

        // Continue from the checkpoint of epoch 2 to 5 epochs: the files
        // drop epoch 3 and hold each epoch once; run.json keeps the first start.
        let checkpoints = run + "/checkpoints"
        let second = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.hasPrefix("step-") }.sorted().dropLast().last)
        let resumed = try nntrain(["train", "--resume", checkpoints + "/" + second, "--epochs", "5", "--no-report"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(metricsLines(run).map { $0["epoch"] as? Int }, [1, 2, 3, 4, 5])
        XCTAssertEqual(try csvRows(run + "/metrics.csv").map { $0["epoch"] }, ["1", "2", "3", "4", "5"])
        record = try json(run + "/run.json")
        XCTAssertEqual(record["start_time"] as? String, started)
        XCTAssertNotNil(record["resumed_time"] as? String)
        results = try json(run + "/results.json")
        XCTAssertEqual(results["epochs_run"] as? Int, 5)
        let sampled = try String(contentsOfFile: run + "/histograms.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["epoch"] as? Int }
        XCTAssertEqual(sampled, [1, 2, 3, 4, 5], "five epochs: every one sampled, the re-trained one once")
        // Each histogram counts every weight of its layer once, between edges from its smallest value to its largest.
        let line = try XCTUnwrap(try String(contentsOfFile: run + "/histograms.jsonl", encoding: .utf8).split(separator: "\n").last)
        let layers = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.compactMap { $0["name"] as? String }, ["layers.0", "layers.1", "layers.2"])
        let model = try modelParameters(run)
        let weights = [32 * 2, 32 * 32, 1 * 32]
        XCTAssertEqual(weights.reduce(0, +) + 32 + 32 + 1, model.count)
        for (layer, count) in zip(layers, weights) {
            let histogram = try XCTUnwrap(layer["weight"] as? [String: Any])
            let counts = try XCTUnwrap(histogram["counts"] as? [Int]), edges = try XCTUnwrap(histogram["edges"] as? [Double])
            XCTAssertEqual(counts.reduce(0, +), count)
            XCTAssertEqual(edges.count, counts.count + 1)
            XCTAssertEqual(edges, edges.sorted())
        }
    }

    func testANewRunRefusesADirectoryThatHoldsAnEarlierRun() throws {
        let dir = temporaryDirectory(self)
        XCTAssertEqual(try nntrain(["train", "--preset", "xor", "--epochs", "2", "--run-dir", dir + "/x"]).status, 0)
        let again = try nntrain(["train", "--preset", "xor", "--epochs", "2", "--run-dir", dir + "/x"])
        assertUserError(again, contains: ["--run-dir: \(dir)/x holds an earlier run", "continue it with --resume"])
    }

    func testAReportOfDamagedRecordsLeavesOutWhatCannotBeRight() throws {
        let dir = temporaryDirectory(self), run = dir + "/run"
        XCTAssertEqual(try nntrain(["train", "--preset", "spiral", "--epochs", "2", "--run-dir", run, "--no-report"]).status, 0)
        // Counters near overflow, and a confusion matrix that does not fit its classes.
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        try (metrics + #"{"epoch": 9223372036854775807, "global_step": 4611686018427387904, "val_loss": 1}"# + "\n")
            .write(toFile: run + "/metrics.jsonl", atomically: true, encoding: .utf8)
        var results = try json(run + "/results.json")
        results["confusion_matrix"] = ["classes": (0..<300).map(String.init), "counts": [[1, 2]]]
        try JSONSerialization.data(withJSONObject: results).write(to: URL(fileURLWithPath: run + "/results.json"))
        let outcome = try nntrain(["report", run])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let page = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        XCTAssertTrue(page.contains("not one count per pair of its 300 classes"), "the damaged matrix is named, not drawn")
        XCTAssertFalse(page.contains("9223372036854775807"), "the implausible epoch is left out")
        XCTAssertLessThan(page.utf8.count, 2_000_000)
    }
}
