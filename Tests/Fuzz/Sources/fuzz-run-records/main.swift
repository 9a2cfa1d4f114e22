// A run directory through `nntrain report`'s reader and page: RunRecords.read
// on the files as written to a directory, then the whole page. An input is
// the files metrics.jsonl, config.json, run.json, results.json and
// histograms.jsonl in that order, separated by the byte 0x1E; a file the
// input does not reach is absent, as in a run that has not written it yet.
// The reader may refuse only a directory without metrics.jsonl.

import FuzzDriver
import Foundation
import NNTraining
@testable import NNTrainApp

let directory = FileManager.default.temporaryDirectory.path + "/nntrain-fuzz-run-\(getpid())"
let names = ["metrics.jsonl", "config.json", "run.json", "results.json", "histograms.jsonl"]

func seed(config: RunConfig, classifier: Bool, ranks: Int) -> [UInt8] {
    var metrics = ""
    for epoch in 1...4 {
        let loss = 1 / Double(epoch + 1)
        metrics += "{\"epoch\": \(epoch), \"global_step\": \(epoch * 10), \"loss\": \(loss), "
        metrics += classifier ? "\"accuracy\": \(0.5 + 0.1 * Double(epoch)), \"val_loss\": \(loss * 1.1), \"val_accuracy\": 0.6, "
                              : "\"mse\": \(loss), \"mae\": \(loss / 2), \"val_loss\": null, "
        metrics += "\"learning_rate\": 0.001, \"seconds\": 0.5, \"samples_per_second\": 1200, \"world_size\": \(ranks)"
        if ranks > 1 {
            let steps = (0..<ranks).map { String(5.0 + Double($0)) }.joined(separator: ", ")
            metrics += ", \"allreduce_ms\": 0.2, \"allreduce_call_ms_per_step\": 0.4, \"rank_step_ms\": [\(steps)], \"rank_wait_ms\": [0.1, null]"
        }
        metrics += "}\n"
    }
    let run = """
        {"nntrain_version": "0.6.0", "world_size": \(ranks), "hosts": ["a", "b"], "device": "cpu", "accelerator": "cpu",
         "communicator": "MPI", "blas_threads": 1, "parameter_count": 99, "feature_names": ["x", "y"], "class_names": null,
         "start_time": "2026-01-01T00:00:00Z", "end_time": null, "exit_reason": "finished"}
        """
    let results = classifier
        ? """
          {"test": {"loss": 0.3, "accuracy": 0.9, "samples": 30}, "confusion_matrix": {"classes": ["a", "b"], "counts": [[10, 2], [3, 15]]},
           "parameter_checksum": "0badf00d", "epochs_run": 4,
           "early_stopping": {"monitor": "val_loss", "best": 0.3, "best_epoch": 2, "stopped_epoch": 4, "restored_best_weights": true}}
          """
        : #"{"test": {"loss": 0.3, "mse": 0.3, "mae": 0.2, "samples": 30}, "epochs_run": 4}"#
    let buckets = #"{"edges": [-1, -0.5, 0, 0.5, 1], "counts": [1, 4, 4, 1]"#
    var histograms = ""
    for epoch in [1, 3] {
        histograms += "{\"epoch\": \(epoch), \"global_step\": \(epoch * 10), \"layers\": [{\"name\": \"layers.0\", "
        histograms += "\"weight\": \(buckets)}, \"gradient_magnitude\": \(buckets), \"zeros\": 2}}]}\n"
    }
    let files = [metrics, config.canonicalJSON + "\n", run, results, histograms]
    return Array(files.joined(separator: "\u{1E}").utf8)
}

Fuzz.main(seeds: { directory in
    try Fuzz.writeSeed(seed(config: try Presets.config("xor"), classifier: true, ranks: 2), "classifier", in: directory)
    try Fuzz.writeSeed(seed(config: try Presets.config("spiral"), classifier: true, ranks: 1), "one-rank", in: directory)
    var regression = try Presets.config("xor")
    regression.task = .regression
    try Fuzz.writeSeed(seed(config: regression, classifier: false, ranks: 1), "regression", in: directory)
}) { bytes in
    mkdir(directory, 0o755)
    let files = bytes.split(separator: 0x1E, omittingEmptySubsequences: false)
    for (index, name) in names.enumerated() {
        let path = directory + "/" + name
        unlink(path)
        if index < files.count { Fuzz.writeFile(Array(files[index]), to: path) }
    }
    Fuzz.expectAcceptedOrRefused(paths: [directory]) {
        let records = try RunRecords.read(directory)
        _ = ReportPage(records: records, live: records.info?.exitReason == "running", regions: .none).html()
    }
}
