// How `nntrain evaluate` and `nntrain predict` show their results.

import NNCore
import NNData
import NNTraining

enum Inference {
    /// The CPU, with the threads this host gives one process.
    static func accelerator() -> any Accelerator {
        CPUAccelerator(threads: Environment.blasThreads(localRanks: 1).count)
    }

    /// `10000 samples - loss: 0.3301 - accuracy: 0.8812`.
    static func line(_ metrics: Metrics) -> String {
        "\(metrics.samples) samples" + Console.format(metrics.named())
    }

    /// One JSON object: `loss`, and `accuracy` or `mse` and `mae`, and `samples`.
    static func json(_ metrics: Metrics) -> String {
        metricsJSON(metrics.named() + [("samples", Double(metrics.samples))], integers: ["samples"])
    }

    /// The rows of `path` the model can read. A model trained on a CSV file
    /// knows its columns' names and takes them by name, in any order (its
    /// label column may be present and is skipped); other models take every
    /// column, in order.
    static func features(of path: String, for loaded: LoadedModel) throws -> Dataset {
        let label = loaded.snapshot.config.data.train.csvLabel
        if let names = loaded.snapshot.featureNames {
            return try CSVLoader.loadFeatures(path: path, columns: names, ignoring: label.map { [$0] } ?? [])
        }
        let features = try CSVLoader.loadFeatures(path: path, excluding: label.map { [$0] } ?? [])
        guard features.featureCount == loaded.snapshot.inputSize else {
            throw UserError("\(path): \(features.featureCount) feature columns but the model takes \(loaded.snapshot.inputSize); give the columns the model was trained on\(label.map { " (the label column '\($0)' may be present and is ignored)" } ?? "")")
        }
        return features
    }

    /// Predictions as CSV: for a classifier the predicted class and one
    /// probability column per class, for regression the predicted values.
    static func csv(_ predictions: Predictions) -> String {
        let width = predictions.width
        var lines: [String]
        if predictions.classes != nil {
            let columns = width == 1 ? ["p_\(predictions.className(1))"] : (0..<width).map { "p_" + predictions.className($0) }
            lines = [(["prediction"] + columns).joined(separator: ",")]
        } else {
            lines = [width == 1 ? "prediction" : (0..<width).map { "prediction_\($0)" }.joined(separator: ",")]
        }
        for r in 0..<predictions.count {
            let cells = predictions.outputs[r * width..<(r + 1) * width].map { String(format: "%.6g", $0) }
            if let classes = predictions.classes {
                lines.append(([predictions.className(classes[r])] + cells).joined(separator: ","))
            } else {
                lines.append(cells.joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
