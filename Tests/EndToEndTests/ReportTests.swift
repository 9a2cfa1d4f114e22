// `nntrain report`: the page of a hand-written run directory has each
// section with the fixture's figures; real runs get decision regions and a
// page rewritten every epoch; the browser check accepts good pages and
// rejects broken ones.

import Foundation
import XCTest
import NNTraining

/// Writes a run directory by hand, file by file, in the format rank 0 writes.
struct RunFixture {
    var directory: String
    var epochs = 12
    /// Validation loss falls to its minimum at this epoch, then rises.
    var bestEpoch = 7
    var classifier = true
    var worldSize = 2
    var exitReason = "finished"
    var classes = ["T-shirt/top", "Trouser", "Pullover"]

    func validationLoss(_ epoch: Int) -> Double { 0.3 + 0.02 * Double(abs(epoch - bestEpoch)) }

    func write(config: RunConfig, results: Bool = true, histograms: Bool = true) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        put(config.canonicalJSON + "\n", "config.json")
        put((1...epochs).map(metricsLine).joined(), "metrics.jsonl")
        put(runJSON(config), "run.json")
        if results { put(resultsJSON, "results.json") }
        if histograms { put(stride(from: 1, through: epochs, by: 2).map(histogramLine).joined(), "histograms.jsonl") }
    }

    func put(_ text: String, _ name: String) {
        FileManager.default.createFile(atPath: directory + "/" + name, contents: Data(text.utf8))
    }

    func metricsLine(_ epoch: Int) -> String {
        let loss = 1.0 / Double(epoch + 1)
        let metrics = classifier
            ? "\"loss\": \(loss), \"accuracy\": \(0.5 + 0.03 * Double(epoch)), \"val_loss\": \(validationLoss(epoch)), \"val_accuracy\": 0.8"
            : "\"loss\": \(loss), \"mse\": \(loss), \"mae\": \(loss / 2), \"val_loss\": \(validationLoss(epoch)), \"val_mse\": \(validationLoss(epoch)), \"val_mae\": null"
        var line = "{\"epoch\": \(epoch), \"global_step\": \(epoch * 100), \(metrics), \"learning_rate\": \(0.001 / Double(epoch)), \"seconds\": 0.9, \"samples_per_second\": \(60000 + epoch * 10), \"world_size\": \(worldSize)"
        if worldSize > 1 {
            let ranks = (0..<worldSize).map { String(8.0 + Double($0) * 0.3) }.joined(separator: ", ")
            let waits = (0..<worldSize).map { String(0.4 - Double($0) * 0.1) }.joined(separator: ", ")
            line += ", \"allreduce_ms\": 0.2, \"allreduce_call_ms_per_step\": 0.4, \"rank_step_ms\": [\(ranks)], \"rank_wait_ms\": [\(waits)]"
        }
        return line + "}\n"
    }

    func runJSON(_ config: RunConfig) -> String {
        let hosts = (0..<worldSize).map { _ in "\"node-a\"" }.joined(separator: ", ")
        return """
            {"nntrain_version": "0.6.0", "config": \(config.canonicalJSON), "world_size": \(worldSize), "hosts": [\(hosts)],
             "device": "cpu (OpenBLAS, 1 thread)", "accelerator": "cpu (OpenBLAS, 1 thread)", "communicator": "MPI",
             "blas_threads": 1, "parameter_count": 235146, "feature_names": null, "class_names": null,
             "start_time": "2026-12-01T22:00:00Z", "end_time": \(exitReason == "running" ? "null" : "\"2026-12-01T22:01:00Z\""),
             "exit_reason": "\(exitReason)"}
            """
    }

    /// counts[t][p] = 10·t + p + (50 on the diagonal).
    func count(_ t: Int, _ p: Int) -> Int { 10 * t + p + (t == p ? 50 : 0) }

    var resultsJSON: String {
        let rows = classes.indices.map { t in "[" + classes.indices.map { String(count(t, $0)) }.joined(separator: ", ") + "]" }
        let names = classes.map { "\"\($0)\"" }.joined(separator: ", ")
        let confusion = classifier ? "{\"classes\": [\(names)], \"counts\": [\(rows.joined(separator: ", "))]}" : "null"
        return """
            {"test": {"loss": 0.33, \(classifier ? "\"accuracy\": 0.89" : "\"mse\": 0.33, \"mae\": 0.2"), "samples": 10000},
             "confusion_matrix": \(confusion), "parameter_checksum": "bb82dde8", "epochs_run": \(epochs),
             "early_stopping": {"monitor": "val_loss", "best": 0.3, "best_epoch": \(bestEpoch), "stopped_epoch": \(epochs), "restored_best_weights": true}}
            """
    }

    func histogramLine(_ epoch: Int) -> String {
        let edges = (0...30).map { String(-0.3 + 0.02 * Double($0)) }.joined(separator: ", ")
        let logEdges = (0...30).map { String(-8 + 0.2 * Double($0) + Double(epoch) * 0.01) }.joined(separator: ", ")
        let counts = (0..<30).map { String(100 - abs(15 - $0) * 6) }.joined(separator: ", ")
        let layers = (0..<3).map { i in
            "{\"name\": \"layers.\(i)\", \"weight\": {\"edges\": [\(edges)], \"counts\": [\(counts)]}, \"gradient_magnitude\": {\"edges\": [\(logEdges)], \"counts\": [\(counts)], \"zeros\": 12}}"
        }
        return "{\"epoch\": \(epoch), \"global_step\": \(epoch * 100), \"layers\": [\(layers.joined(separator: ", "))]}\n"
    }
}

final class ReportTests: XCTestCase {
    func report(_ directory: String) throws -> String {
        let outcome = try nntrain(["report", directory])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        return try String(contentsOfFile: directory + "/report.html", encoding: .utf8)
    }

    func testEverySectionOfAFinishedClassifierRun() throws {
        let fixture = RunFixture(directory: temporaryDirectory(self) + "/run")
        fixture.write(config: try Presets.config("fashion-mnist"))
        let page = try report(fixture.directory)
        for id in ["loss-curve", "accuracy-curve", "learning-rate-curve", "histograms", "confusion-matrix",
                   "throughput-curve", "rank-share-curve", "rank-table", "final-metrics"] {
            XCTAssertTrue(page.contains("id=\"\(id)\""), "no #\(id)")
        }
        // The overfitting marker sits at the minimum of val_loss, the early stop at the last epoch.
        XCTAssertTrue(page.contains("class=\"marker best-val\" data-x=\"\(fixture.bestEpoch)\""))
        XCTAssertTrue(page.contains("class=\"marker early-stop\" data-x=\"\(fixture.epochs)\""))
        XCTAssertTrue(page.contains("overfitting"))
        // Every cell of the confusion matrix, and the class names.
        for t in fixture.classes.indices {
            for p in fixture.classes.indices {
                XCTAssertTrue(page.contains("class=\"cm-count\" data-true=\"\(t)\" data-predicted=\"\(p)\""), "cell \(t),\(p)")
                let cell = try XCTUnwrap(page.range(of: "data-true=\"\(t)\" data-predicted=\"\(p)\""))
                let text = page[cell.upperBound...].drop { $0 != ">" }.dropFirst().prefix { $0 != "<" }
                XCTAssertEqual(String(text), String(fixture.count(t, p)), "cell \(t),\(p)")
            }
        }
        for name in fixture.classes { XCTAssertTrue(page.contains(escapeForHTML(name)), name) }
        // Histograms of 3 layers at 4 of the 6 sampled epochs, weights and gradients.
        XCTAssertEqual(page.components(separatedBy: "class=\"histogram\"").count - 1, 3 * 4 * 2)
        // 784 inputs: no decision regions; finished: no reload; no script, nothing fetched.
        XCTAssertFalse(page.contains("decision-regions"))
        XCTAssertFalse(page.contains("http-equiv=\"refresh\""))
        XCTAssertFalse(page.contains("<script"))
        XCTAssertFalse(page.range(of: #"(src|href)="(?!data:)"#, options: .regularExpression) != nil, "an external resource")
        XCTAssertTrue(page.contains("node-a ×2"))
        XCTAssertTrue(page.contains("89.00%"), "test accuracy")
    }

    func testARunningRunReloadsAndOlderRunsLeaveSectionsOut() throws {
        var fixture = RunFixture(directory: temporaryDirectory(self) + "/run")
        fixture.exitReason = "running"
        fixture.worldSize = 1
        fixture.write(config: try Presets.config("fashion-mnist"), results: false, histograms: false)
        let page = try report(fixture.directory)
        XCTAssertTrue(page.contains("<meta http-equiv=\"refresh\" content=\"2\">"))
        XCTAssertTrue(page.contains("histograms.jsonl is missing"))
        XCTAssertTrue(page.contains("results.json is missing"))
        XCTAssertFalse(page.contains("id=\"histograms\""))
        XCTAssertFalse(page.contains("id=\"confusion-matrix\""))
        XCTAssertFalse(page.contains("rank-share-curve"), "one rank: no per-rank chart")
        XCTAssertTrue(page.contains("id=\"loss-curve\""))
    }

    func testRegressionShowsErrorsAndNoConfusionMatrix() throws {
        let directory = temporaryDirectory(self)
        var fixture = RunFixture(directory: directory + "/run")
        fixture.classifier = false
        fixture.write(config: try ConfigReader.read(path: divergingConfig(in: directory)))
        let page = try report(fixture.directory)
        XCTAssertTrue(page.contains("id=\"mse-curve\""))
        XCTAssertTrue(page.contains("id=\"mae-curve\""))
        XCTAssertFalse(page.contains("id=\"accuracy-curve\""))
        XCTAssertFalse(page.contains("Confusion matrix"))
        // Two inputs, but no model file yet.
        XCTAssertTrue(page.contains("No model file yet"))
    }

    func testNotARunDirectory() throws {
        let directory = temporaryDirectory(self)
        write("{}", "config.json", in: directory)
        assertUserError(try nntrain(["report", directory]), contains: [directory, "no metrics.jsonl"])
        assertUserError(try nntrain(["report", directory + "/missing"]), contains: [directory + "/missing", "does not exist"])
    }

    /// A real spiral run writes the page every epoch; its last page does not reload.
    func testATrainingRunKeepsItsReport() throws {
        let directory = temporaryDirectory(self)
        let outcome = try nntrain(["train", "--preset", "spiral", "--epochs", "3", "--run-dir", "run"], in: directory)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertFalse(outcome.stderr.contains("warning"), outcome.stderr)
        let page = try String(contentsOfFile: directory + "/run/report.html", encoding: .utf8)
        XCTAssertTrue(page.contains("id=\"decision-regions\""))
        XCTAssertTrue(page.contains("data:image/png;base64,"))
        XCTAssertEqual(page.components(separatedBy: "class=\"unit\"").count - 1, 32, "one map per first-layer unit")
        XCTAssertFalse(page.contains("http-equiv=\"refresh\""), "the finished run's page reloads")
        XCTAssertTrue(page.contains("the final model"))
        // The run's own record: its facts, the test set's confusion matrix, the sampled histograms.
        XCTAssertTrue(page.contains("status-finished"), "run.json's exit reason")
        XCTAssertTrue(page.contains("id=\"confusion-matrix\""))
        XCTAssertTrue(page.contains("id=\"histograms\""))
        XCTAssertTrue(try report(directory + "/run").contains("id=\"decision-regions\""))

        let quiet = try nntrain(["train", "--preset", "xor", "--epochs", "2", "--run-dir", "quiet", "--no-report"], in: directory)
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/quiet/report.html"))
    }

    /// While a run trains its page reloads itself; after a stop request it does not.
    func testThePageReloadsWhileTrainingAndNotAfterAStop() throws {
        let directory = temporaryDirectory(self), run = directory + "/run"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nntrainBinary)
        process.arguments = ["train", "--preset", "spiral", "--epochs", "200", "--run-dir", run]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let start = Date()
        while metricsLines(run).count < 3 && Date().timeIntervalSince(start) < 120 { usleep(10_000) }
        let live = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        XCTAssertTrue(live.contains("http-equiv=\"refresh\""), "a running run's page reloads")
        XCTAssertTrue(live.contains("id=\"decision-regions\""))
        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let stopped = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        XCTAssertFalse(stopped.contains("http-equiv=\"refresh\""), "a stopped run's page reloads")
    }

    func escapeForHTML(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}

/// scripts/check-report in headless Chromium: it must pass a real report and
/// fail a page with a script error, one that cannot load a resource, and a blank one.
final class ReportBrowserTests: XCTestCase {
    func checkReport(_ page: String, in directory: String) throws -> Outcome {
        guard ["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("chromium is not installed (scripts/install-deps installs it)")
        }
        return try runProcess("/usr/bin/python3", [packageRoot + "/scripts/check-report", page, directory + "/shot.png"], timeout: 120)
    }

    func testTheCheckerFailsBrokenPages() throws {
        let directory = temporaryDirectory(self)
        let pages = [
            "script-error": "<!DOCTYPE html><html><body><h1>Report</h1><p>text</p><script>undefinedFunction()</script></body></html>",
            "missing-image": "<!DOCTYPE html><html><body><h1>Report</h1><img src=\"missing.png\"></body></html>",
            "blank": "<!DOCTYPE html><html><body></body></html>",
        ]
        for (name, html) in pages {
            let outcome = try checkReport(write(html, name + ".html", in: directory), in: directory)
            XCTAssertEqual(outcome.status, 1, "\(name): \(outcome.stdout) \(outcome.stderr)")
            XCTAssertFalse(outcome.stderr.isEmpty, name)
        }
    }

    func testTheCheckerPassesARealReport() throws {
        let directory = temporaryDirectory(self)
        XCTAssertEqual(try nntrain(["train", "--preset", "xor", "--epochs", "20", "--run-dir", "run"], in: directory).status, 0)
        let outcome = try checkReport(directory + "/run/report.html", in: directory)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/shot.png"))
    }
}
