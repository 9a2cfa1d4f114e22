// A run's TensorBoard event files as TensorBoard itself reads them
// (tensorboard's EventAccumulator, through NNTRAIN_PYTHON): the same figures
// as metrics.jsonl, histograms at the sampled epochs, and after a resume
// from an earlier checkpoint exactly one value per epoch.

import Foundation
import XCTest
import NNTraining

final class TensorBoardTests: XCTestCase {
    /// Prints, as JSON, every scalar and histogram of each run directory
    /// given: `{dir: {"scalars": {tag: [[step, value]]}, "histograms": {tag:
    /// [[step, num, min, max, bucket total, buckets]]}, "files": n}}`.
    static let reader = """
        import json, os, sys
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        purge = sys.argv[1] == "purge"
        result = {}
        for path in sys.argv[2:]:
            acc = EventAccumulator(path, size_guidance={"scalars": 0, "histograms": 0}, purge_orphaned_data=purge)
            acc.Reload()
            tags = acc.Tags()
            result[os.path.basename(path)] = {
                "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
                "histograms": {t: [[e.step, e.histogram_value.num, e.histogram_value.min, e.histogram_value.max,
                                    sum(e.histogram_value.bucket), len(e.histogram_value.bucket)]
                                   for e in acc.Histograms(t)] for t in tags["histograms"]},
                "files": len([f for f in os.listdir(path) if "tfevents" in f]),
            }
        print(json.dumps(result))
        """

    /// The Python of NNTRAIN_PYTHON, if it has tensorboard.
    func python() throws -> String {
        guard let python = ProcessInfo.processInfo.environment["NNTRAIN_PYTHON"], !python.isEmpty else {
            throw XCTSkip("set NNTRAIN_PYTHON to a Python with `tensorboard` installed (scripts/test installs it into .venv when pip can reach PyPI)")
        }
        let probe = try runProcess(python, ["-c", "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator"])
        guard probe.status == 0 else {
            throw XCTSkip("NNTRAIN_PYTHON=\(python) cannot import tensorboard: \(probe.stderr.split(separator: "\n").last ?? "")")
        }
        return python
    }

    typealias Read = [String: [String: Any]]

    /// What TensorBoard reads from `RUN/tensorboard/{train,validation,steps,test}`.
    func read(_ run: String, purge: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws -> Read {
        let dirs = ["train", "validation", "steps", "test"].map { run + "/tensorboard/" + $0 }
        let outcome = try runProcess(try python(), ["-c", Self.reader, purge ? "purge" : "keep"] + dirs)
        XCTAssertEqual(outcome.status, 0, outcome.stderr, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? Read, outcome.stdout,
                             file: file, line: line)
    }

    func scalars(_ read: Read, _ dir: String, _ tag: String) -> [[Double]] {
        ((read[dir]?["scalars"] as? [String: Any])?[tag] as? [[Any]] ?? []).map { $0.compactMap { ($0 as? NSNumber)?.doubleValue } }
    }

    func histograms(_ read: Read) -> [String: [[Double]]] {
        ((read["train"]?["histograms"] as? [String: [[Any]]]) ?? [:]).mapValues { $0.map { $0.compactMap { ($0 as? NSNumber)?.doubleValue } } }
    }

    /// Each scalar at its step equals the metrics.jsonl figure to float precision.
    func assertMatchesMetrics(_ read: Read, _ run: String, file: StaticString = #filePath, line: UInt = #line) {
        let lines = metricsLines(run)
        XCTAssertEqual(lines.map { $0["epoch"] as? Int }, (1...6).map { $0 }, file: file, line: line)
        let expected: [(dir: String, tag: String, field: String)] = [
            ("train", "epoch_loss", "loss"), ("train", "epoch_accuracy", "accuracy"),
            ("train", "epoch_learning_rate", "learning_rate"), ("train", "epoch_seconds", "seconds"),
            ("train", "epoch_samples_per_second", "samples_per_second"),
            ("validation", "epoch_loss", "val_loss"), ("validation", "epoch_accuracy", "val_accuracy"),
        ]
        for (dir, tag, field) in expected {
            let values = scalars(read, dir, tag)
            XCTAssertEqual(values.map { Int($0[0]) }, lines.map { $0["epoch"] as? Int ?? -1 }, "\(dir)/\(tag) steps", file: file, line: line)
            for (value, metrics) in zip(values, lines) {
                // metrics.jsonl has 6 significant digits; the event a float.
                let want = (metrics[field] as? NSNumber)?.doubleValue ?? .nan
                XCTAssertEqual(value[1], want, accuracy: 1e-5 * max(abs(want), 1e-3), "\(dir)/\(tag) at \(value[0])", file: file, line: line)
            }
        }
        let rates = scalars(read, "steps", "learning_rate")
        XCTAssertEqual(rates.map { Int($0[0]) }, lines.map { $0["global_step"] as? Int ?? -1 }, file: file, line: line)
        XCTAssertEqual(Set((read["train"]?["scalars"] as? [String: Any] ?? [:]).keys),
                       ["epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_seconds", "epoch_samples_per_second"],
                       file: file, line: line)
        XCTAssertEqual(Set((read["validation"]?["scalars"] as? [String: Any] ?? [:]).keys), ["epoch_loss", "epoch_accuracy"],
                       file: file, line: line)
    }

    func testTensorBoardReadsTheRunAndAResumeLeavesOneValuePerEpoch() throws {
        _ = try python()
        let dir = temporaryDirectory(self)
        let run = dir + "/spiral"
        let trained = try nntrain(["train", "--preset", "spiral", "--epochs", "6", "--run-dir", run, "--keep-checkpoints", "10"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let first = try read(run)
        assertMatchesMetrics(first, run)

        // Histograms at the sampled epochs (1, 2, 4, 5, 6 of 6), every value counted.
        XCTAssertEqual((1...6).filter { ParameterSampling.wants(epoch: $0, of: 6) }, [1, 2, 4, 5, 6])
        let counts = [("layers.0", 32 * 2, 32), ("layers.1", 32 * 32, 32), ("layers.2", 32, 1)]
        let histos = histograms(first)
        XCTAssertEqual(Set(histos.keys), Set(counts.flatMap { name, _, _ in
            ["weight", "bias", "weight_gradient", "bias_gradient"].map { name + "/" + $0 } }))
        for (name, weights, biases) in counts {
            for (kind, count) in [("weight", weights), ("bias", biases), ("weight_gradient", weights), ("bias_gradient", biases)] {
                let entries = histos[name + "/" + kind] ?? []
                XCTAssertEqual(entries.map { Int($0[0]) }, [1, 2, 4, 5, 6], "\(name)/\(kind) steps")
                for entry in entries {
                    XCTAssertEqual(entry[1], Double(count), "\(name)/\(kind) num")
                    XCTAssertEqual(entry[4], Double(count), "\(name)/\(kind) bucket total")
                    XCTAssertLessThanOrEqual(entry[2], entry[3])
                    XCTAssertTrue((1...30).contains(Int(entry[5])), "\(name)/\(kind) buckets: \(entry[5])")
                }
            }
        }

        // The test figures, once, at the last epoch.
        let testLoss = scalars(first, "test", "test_loss"), testAccuracy = scalars(first, "test", "test_accuracy")
        XCTAssertEqual(testLoss.map { Int($0[0]) }, [6])
        XCTAssertEqual(testAccuracy.count, 1)
        // The console's `test - loss: 0.1234 - accuracy: …` line, to its four decimals.
        let printed = trained.stdout.split(separator: "\n").first { $0.hasPrefix("test - loss: ") }
            .flatMap { Double($0.dropFirst("test - loss: ".count).prefix { $0 != " " }) }
        XCTAssertEqual(testLoss.first?[1] ?? .nan, try XCTUnwrap(printed, trained.stdout), accuracy: 0.00005)

        // Resume from the checkpoint after epoch 3, as after a crash that lost
        // the later ones: a second file in each directory, and TensorBoard
        // keeps only its values for epochs 4-6.
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertEqual(checkpoints.count, 6, "\(checkpoints)")
        let resumed = try nntrain(["train", "--run-dir", run, "--resume", run + "/checkpoints/" + checkpoints[2]])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("(epoch 4, step 0"), resumed.stdout)
        let again = try read(run)
        XCTAssertEqual(again["train"]?["files"] as? Int, 2)
        XCTAssertEqual(again["steps"]?["files"] as? Int, 2)
        assertMatchesMetrics(again, run)
        for (tag, entries) in histograms(again) {
            XCTAssertEqual(entries.map { Int($0[0]) }, [1, 2, 4, 5, 6], tag)
        }
        XCTAssertEqual(scalars(again, "test", "test_loss").map { Int($0[0]) }, [6])
        // Without the purge, the old file's epochs 4-6 would still be there.
        let unpurged = try read(run, purge: false)
        XCTAssertEqual(scalars(unpurged, "train", "epoch_loss").map { Int($0[0]) }.sorted(), [1, 2, 3, 4, 4, 5, 5, 6, 6])
    }

    func testUnwritableEventFilesWarnOnceAndTrainingGoesOn() throws {
        let run = temporaryDirectory(self) + "/xor"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        // A file where the tensorboard directory would go.
        write("", "tensorboard", in: run)
        let trained = try nntrain(["train", "--preset", "xor", "--epochs", "3", "--run-dir", run])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertEqual(metricsLines(run).count, 3)
        let warnings = trained.stderr.split(separator: "\n").filter { $0.contains("warning") }
        XCTAssertEqual(warnings.count, 1, trained.stderr)
        XCTAssertTrue(warnings.first?.contains(run + "/tensorboard") ?? false, trained.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/model.safetensors"))
    }

    func testNoTensorBoardWritesNone() throws {
        let run = temporaryDirectory(self) + "/xor"
        let trained = try nntrain(["train", "--preset", "xor", "--epochs", "2", "--run-dir", run, "--no-tensorboard"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertEqual(metricsLines(run).count, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/tensorboard"))
    }
}
