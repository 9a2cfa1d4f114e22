// `nntrain evaluate` and `nntrain predict`: a saved model on new data.

import Foundation
import NNCore
import NNData

/// Loading a saved model for inference.
public struct LoadedModel {
    public let snapshot: ModelSnapshot
    public let objective: Objective
    public let model: Sequential

    /// Reads `path` and rebuilds the model on `accelerator`.
    public init(path: String, accelerator: any Accelerator) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError("--model: \(path): no such file; give a model.safetensors written by nntrain train")
        }
        snapshot = try ModelFile.read(path: path)
        objective = try snapshot.config.objective()
        model = Sequential(inputSize: snapshot.inputSize, layers: snapshot.config.layerSpecs, objective: objective,
                           accelerator: accelerator)
        snapshot.parameters.withUnsafeBufferPointer { accelerator.copy($0, to: model.parameters) }
    }
}

extension Launch {
    // MARK: - evaluate

    /// Loss and metrics of a saved model on the test set of `config`
    /// (default: the configuration saved in the model).
    public static func evaluate(modelPath: String, configPath: String?, preset: String?) throws -> Metrics {
        let accelerator = CPUAccelerator(threads: blasThreads(localRanks: 1).count)
        let loaded = try LoadedModel(path: modelPath, accelerator: accelerator)
        var config = loaded.snapshot.config
        if let configPath { config.data = try ConfigReader.read(path: configPath).data }
        if let preset { config.data = try Presets.config(preset).data }
        guard let source = config.data.test else {
            throw UserError("\(configPath ?? preset.map { "preset \($0)" } ?? modelPath): the configuration has no data.test; add a test set, or pass --config with one")
        }
        var test = try DataLoading.load(source, task: config.task, classNames: loaded.snapshot.classNames)
        try DataLoading.check(test, objective: loaded.objective)
        guard test.featureCount == loaded.snapshot.inputSize else {
            throw UserError("\(source.summary): the test set has \(test.featureCount) features but the model takes \(loaded.snapshot.inputSize); use data with the model's columns")
        }
        loaded.snapshot.scaler.apply(to: &test)
        var batches = BatchAssembler(accelerator: accelerator, objective: loaded.objective, featureCount: test.featureCount,
                                     labelWidth: test.labelWidth, rows: 1024)
        let sums = Trainer.evaluate(model: loaded.model, dataset: test, range: 0..<test.count, batches: &batches)
        return Metrics(statistics: sums, samples: test.count, isClassifier: loaded.objective.isClassifier,
                       accuracyUnits: loaded.objective.accuracyUnitsPerSample, outputs: loaded.objective.outputs)
    }

    /// One JSON object: `loss`, and `accuracy` or `mse` and `mae`.
    public static func json(_ metrics: Metrics) -> String {
        var fields = ["\"loss\": \(jsonNumber(metrics.loss))"]
        if let a = metrics.accuracy { fields.append("\"accuracy\": \(jsonNumber(a))") }
        if let m = metrics.mse { fields.append("\"mse\": \(jsonNumber(m))") }
        if let m = metrics.mae { fields.append("\"mae\": \(jsonNumber(m))") }
        fields.append("\"samples\": \(metrics.samples)")
        return "{" + fields.joined(separator: ", ") + "}"
    }

    private static func jsonNumber(_ value: Double) -> String {
        value.isFinite ? String(format: "%.6g", value) : "null"
    }

    // MARK: - predict

    /// Predictions for every row of a CSV file, as CSV text: for a classifier
    /// the predicted class and one probability column per class, for
    /// regression the predicted values. A label column, if present, is ignored.
    public static func predict(modelPath: String, inputPath: String) throws -> String {
        let accelerator = CPUAccelerator(threads: blasThreads(localRanks: 1).count)
        let loaded = try LoadedModel(path: modelPath, accelerator: accelerator)
        let config = loaded.snapshot.config
        let label = config.data.train.format == .csv ? config.data.train.label : nil
        var features = try CSVLoader.loadFeatures(path: inputPath, excluding: label.map { [$0] } ?? [])
        guard features.featureCount == loaded.snapshot.inputSize else {
            throw UserError("\(inputPath): \(features.featureCount) feature columns but the model takes \(loaded.snapshot.inputSize); give the columns the model was trained on\(label.map { " (the label column '\($0)' may be present and is ignored)" } ?? "")")
        }
        loaded.snapshot.scaler.apply(to: &features)

        let objective = loaded.objective
        let outputs = objective.outputs
        let classNames = loaded.snapshot.classNames
        func className(_ k: Int) -> String { classNames.map { k < $0.count ? $0[k] : String(k) } ?? String(k) }
        var lines: [String] = []
        if objective.isClassifier {
            let columns = outputs == 1 ? ["p_\(className(1))"] : (0..<outputs).map { "p_" + className($0) }
            lines.append((["prediction"] + columns).joined(separator: ","))
        } else {
            lines.append(outputs == 1 ? "prediction" : (0..<outputs).map { "prediction_\($0)" }.joined(separator: ","))
        }
        let chunk = 1024
        let input = accelerator.tensor(rows: chunk, columns: features.featureCount)
        var start = 0
        while start < features.count {
            let n = min(chunk, features.count - start)
            features.features.withUnsafeBufferPointer {
                accelerator.copy(UnsafeBufferPointer(rebasing: $0[start * features.featureCount..<(start + n) * features.featureCount]),
                                 to: input.prefix(rows: n))
            }
            let output = accelerator.values(loaded.model.predict(input.prefix(rows: n)))
            for r in 0..<n {
                let row = output[r * outputs..<(r + 1) * outputs]
                let cells = row.map { String(format: "%.6g", $0) }
                if objective.isClassifier {
                    let predicted: Int
                    if outputs == 1 {
                        let cut: Float = { if case .threshold(let c) = objective.accuracy { return c }; return 0.5 }()
                        predicted = row[row.startIndex] >= cut ? 1 : 0
                    } else {
                        predicted = row.indices.max { row[$0] < row[$1] }! - row.startIndex
                    }
                    lines.append(([className(predicted)] + cells).joined(separator: ","))
                } else {
                    lines.append(cells.joined(separator: ","))
                }
            }
            start += n
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
