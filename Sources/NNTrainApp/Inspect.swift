// How `nntrain inspect` shows a model or checkpoint file: a Keras-style
// layer table, statistics of every weight tensor, the stored configuration
// and position; or the same facts as one JSON object.

import ArgumentParser
import Foundation
import NNCore
import NNData
import NNTraining

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a model or checkpoint file holds: layers, weight statistics, configuration, position.")

    @Argument(help: ArgumentHelp("A model.safetensors or a checkpoint (RUN/checkpoints/step-*.safetensors).", valueName: "model"))
    var model: String

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        let summary = try ModelSummary.read(path: model)
        output(json ? ModelReport.json(summary) + "\n" : ModelReport.text(summary))
    }
}

enum ModelReport {
    // MARK: - Text

    /// The whole report, lines ending in newlines.
    static func text(_ summary: ModelSummary) -> String {
        let snapshot = summary.snapshot, config = snapshot.config
        var lines: [String] = []
        let kind = summary.isCheckpoint ? "checkpoint" : "final model"
        lines.append("\(summary.path): \(kind), written by nntrain \(summary.writtenBy ?? "(version not recorded)")"
                     + " (format \(summary.formatVersion), \(summary.fileBytes) bytes)")
        lines.append("")
        lines += layerTable(summary)
        lines.append("")
        lines.append("Weights")
        lines += statisticsTable(summary)
        lines.append("")
        lines.append("Configuration")
        lines += aligned([
            ("data", dataLine(config.data)),
            ("loss", "\(config.loss.rawValue) (\(config.task.rawValue))"),
            ("optimizer", Console.describe(config.optimizer)),
            ("training", "epochs \(config.training.epochs), batch_size \(config.training.batchSize), seed \(config.training.seed), shuffle \(config.training.shuffle ? "on" : "off")"),
        ] + (config.training.earlyStopping.map { e in
            [("early stopping", "monitor \(e.monitor) (\(e.maximizes ? "max" : "min")), patience \(e.patience), min_delta \(e.minDelta), restore_best_weights \(e.restoreBestWeights)")]
        } ?? []))
        if let position = snapshot.position {
            lines.append("")
            lines.append("Position")
            let slots = summary.optimizerSlots
            lines += aligned([
                ("epoch", "\(position.epoch + 1) of \(config.training.epochs) (\(position.epoch) completed)"),
                ("step in epoch", "\(position.stepInEpoch)"),
                ("global step", "\(position.globalStep)"),
                ("world size", "\(position.worldSize)"),
                ("optimizer steps", "\(snapshot.optimizerSteps)"),
                ("optimizer state", slots.isEmpty ? "none" : slots.joined(separator: ", ") + " (\(slots.count) × \(summary.parameterCount) values)"),
            ] + (position.earlyStopping.map { [("early stopping", earlyStoppingLine($0))] } ?? []))
        }
        lines.append("")
        lines.append("Inputs and outputs")
        lines += aligned([
            ("features", "\(snapshot.inputSize)" + (snapshot.featureNames.map { ": " + $0.joined(separator: ", ") } ?? " (names not stored)")),
            ("classes", snapshot.classNames.map { "\($0.count): " + $0.joined(separator: ", ") } ?? "names not stored"),
            ("scaler", scalerLine(snapshot.scaler)),
        ])
        return lines.map { $0 + "\n" }.joined()
    }

    /// `Layer (type)  Output  Activation  Weight  Bias  Param #`, then the total.
    static func layerTable(_ summary: ModelSummary) -> [String] {
        var rows: [[String]] = [["input", "\(summary.snapshot.inputSize)", "", "", "", ""]]
        var dense = 0
        for layer in summary.layers {
            switch layer.spec {
            case .dense(_, let activation, _, let l1, let l2):
                var detail = activation.name
                if l1 != 0 { detail += ", l1 \(l1)" }
                if l2 != 0 { detail += ", l2 \(l2)" }
                rows.append(["layers.\(dense) (dense)", "\(layer.outputWidth)", detail, shape(layer.weight?.shape),
                             shape(layer.bias?.shape), "\(layer.parameterCount)"])
                dense += 1
            case .dropout(let rate):
                rows.append(["dropout (rate \(rate))", "\(layer.outputWidth)", "", "", "", "0"])
            }
        }
        let table = Table(header: ["Layer (type)", "Output", "Activation", "Weight", "Bias", "Param #"],
                          rightAligned: [1, 5], rows: rows)
        return table.lines + ["Total params: \(summary.parameterCount)"]
    }

    /// One row per tensor: shape, min, max, mean, std, zeros, non-finite.
    static func statisticsTable(_ summary: ModelSummary) -> [String] {
        var rows: [[String]] = []
        for layer in summary.layers {
            for tensor in [layer.weight, layer.bias].compactMap({ $0 }) {
                let s = tensor.statistics
                rows.append([tensor.name, shape(tensor.shape), number(s.minimum), number(s.maximum), number(s.mean),
                             number(s.standardDeviation), String(format: "%.1f%%", s.zeroFraction * 100), "\(s.nonFinite)"])
            }
        }
        return Table(header: ["Tensor", "Shape", "Min", "Max", "Mean", "Std", "Zeros", "Non-finite"],
                     rightAligned: [2, 3, 4, 5, 6, 7], rows: rows).lines
    }

    static func dataLine(_ data: DataConfig) -> String {
        func source(_ s: DataSource) -> String { s.summary + (s.limit.map { ", first \($0)" } ?? "") }
        var parts = ["train " + source(data.train)]
        if let test = data.test { parts.append("test " + source(test)) }
        parts.append("validation_split \(data.validationSplit)")
        parts.append("scale \(data.scale.rawValue)")
        return parts.joined(separator: "; ")
    }

    static func scalerLine(_ scaler: FeatureScaler) -> String {
        switch scaler.method {
        case .none: "none"
        case .minmax, .standardize: "\(scaler.method.rawValue) (offsets and factors for \(scaler.offsets.count) features)"
        }
    }

    static func shape(_ shape: [Int]?) -> String {
        shape.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? ""
    }

    static func number(_ value: Double?) -> String {
        value.map { String(format: "%.4g", $0) } ?? "-"
    }

    /// `  name   value` pairs; every section's values start in one column.
    static func aligned(_ pairs: [(String, String)]) -> [String] {
        let width = max(15, pairs.map(\.0.count).max() ?? 0)
        return pairs.map { "  " + $0.0.padding(toLength: width + 3, withPad: " ", startingAt: 0) + $0.1 }
    }

    // MARK: - JSON

    /// The same facts as one JSON object (keys sorted; statistics of a tensor
    /// without finite values are null).
    static func json(_ summary: ModelSummary) -> String {
        let snapshot = summary.snapshot
        var object: [String: Any] = [
            "path": summary.path,
            "kind": summary.isCheckpoint ? "checkpoint" : "model",
            "nntrain_version": summary.writtenBy ?? NSNull(),
            "format_version": summary.formatVersion,
            "file_bytes": summary.fileBytes,
            "input_size": snapshot.inputSize,
            "layers": summary.layers.map(layerObject),
            "total_parameters": summary.parameterCount,
            "config": (try? JSONSerialization.jsonObject(with: Data(snapshot.config.canonicalJSON.utf8))) ?? NSNull(),
            "feature_names": snapshot.featureNames ?? NSNull(),
            "class_names": snapshot.classNames ?? NSNull(),
            "scaler": ["method": snapshot.scaler.method.rawValue, "features": snapshot.scaler.offsets.count] as [String: Any],
        ]
        if let position = snapshot.position {
            object["position"] = [
                "epoch": position.epoch + 1,
                "epochs_completed": position.epoch,
                "step_in_epoch": position.stepInEpoch,
                "global_step": position.globalStep,
                "world_size": position.worldSize,
                "optimizer_steps": snapshot.optimizerSteps,
                "optimizer_state": summary.optimizerSlots,
            ] as [String: Any]
        } else {
            object["position"] = NSNull()
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func layerObject(_ layer: LayerSummary) -> [String: Any] {
        var object: [String: Any] = ["output": layer.outputWidth, "parameters": layer.parameterCount]
        switch layer.spec {
        case .dense(let units, let activation, let initializer, let l1, let l2):
            object["kind"] = "dense"
            object["units"] = units
            object["activation"] = activation.name
            object["kernel_initializer"] = initializer.rawValue
            object["l1"] = Double(l1)
            object["l2"] = Double(l2)
            object["weight"] = layer.weight.map(tensorObject) ?? NSNull()
            object["bias"] = layer.bias.map(tensorObject) ?? NSNull()
        case .dropout(let rate):
            object["kind"] = "dropout"
            object["rate"] = Double(rate)
        }
        return object
    }

    static func tensorObject(_ tensor: TensorSummary) -> [String: Any] {
        let s = tensor.statistics
        func value(_ x: Double?) -> Any { x ?? NSNull() }
        return ["name": tensor.name, "shape": tensor.shape, "count": tensor.count,
                "min": value(s.minimum), "max": value(s.maximum), "mean": value(s.mean), "std": value(s.standardDeviation),
                "zero_fraction": s.zeroFraction, "non_finite": s.nonFinite]
    }
}

/// A plain-text table: a header, a rule, rows; columns padded to their widest cell.
struct Table {
    var header: [String]
    /// Columns whose cells are right-aligned (numbers).
    var rightAligned: Set<Int>
    var rows: [[String]]

    var lines: [String] {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func format(_ cells: [String]) -> String {
            let padded = cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? pad + cell : cell + pad
            }
            var line = padded.joined(separator: "   ")
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
        let total = widths.reduce(0, +) + 3 * (widths.count - 1)
        return [String(repeating: "_", count: total), format(header), String(repeating: "=", count: total)]
            + rows.map(format) + [String(repeating: "=", count: total)]
    }
}

/// Where a checkpoint's early stopping stands.
private func earlyStoppingLine(_ state: EarlyStoppingState) -> String {
    var text = "nothing watched yet"
    if let best = state.best {
        text = "best \(String(format: "%.4f", best)) at epoch \(state.bestEpoch), \(state.wait) epoch(s) since"
    }
    if let stopped = state.stoppedEpoch { text += "; stopped at epoch \(stopped)" }
    return text
}
