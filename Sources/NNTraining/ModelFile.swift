// Models and checkpoints as safetensors files.
//
// Tensors: `layers.{i}.weight` [out, in] and `layers.{i}.bias` [out] for the
// i-th Dense layer (PyTorch nn.Linear layout); checkpoints add the optimizer
// state as `optimizer.{slot}.layers.{i}.weight` etc. The header's metadata
// holds everything else as strings: the resolved config, the feature scaler,
// class names, and for checkpoints the exact training position.

import Foundation
import NNCore
import NNData
import SafeTensors

/// Where a checkpointed run stands: enough to continue at the exact next sample.
public struct TrainingPosition: Codable, Equatable, Sendable {
    /// 0-based epoch in progress.
    public var epoch: Int
    /// Steps of that epoch already taken.
    public var stepInEpoch: Int
    /// Optimizer steps taken since the run began.
    public var globalStep: Int
    /// World size when saved (the global batch is independent of it).
    public var worldSize: Int
    /// The epoch's running statistics so far (loss sum, correct, …) and samples, for the progress line.
    public var epochStatistics: [Double]
    public var epochSamples: Int
    /// Early stopping's standing, when the run uses it.
    public var earlyStopping: EarlyStoppingState?
    /// Steps skipped for NaN or ±inf in this epoch so far, and in a row
    /// (runs with `training.on_nonfinite: skip` that skipped any).
    public var skippedSteps: Int?, consecutiveSkips: Int?

    enum CodingKeys: String, CodingKey {
        case epoch, stepInEpoch, globalStep, worldSize, epochStatistics, epochSamples
        case earlyStopping = "early_stopping"
        case skippedSteps = "skipped_steps"
        case consecutiveSkips = "consecutive_skips"
    }

    /// A position, as the trainer records it.
    public init(epoch: Int, stepInEpoch: Int, globalStep: Int, worldSize: Int, epochStatistics: [Double], epochSamples: Int) {
        self.epoch = epoch
        self.stepInEpoch = stepInEpoch
        self.globalStep = globalStep
        self.worldSize = worldSize
        self.epochStatistics = epochStatistics
        self.epochSamples = epochSamples
    }
}

/// A model's contents in host memory: what a model or checkpoint file holds.
public struct ModelSnapshot: Sendable {
    public var config: RunConfig
    public var inputSize: Int
    public var scaler: FeatureScaler
    public var classNames: [String]?
    /// The feature columns' names, when the training data had a header (CSV).
    public var featureNames: [String]?
    /// All parameters in flat layout order.
    public var parameters: [Float]
    /// Optimizer state, slot-major (`UpdateRule.slots` order), empty for a final model.
    public var optimizerState: [Float]
    /// Optimizer updates taken (Adam's t).
    public var optimizerSteps: Int
    /// Set for checkpoints.
    public var position: TrainingPosition?
    /// Checkpoints of runs with gradient compression: every rank's error
    /// feedback residual, rank after rank (ranks × parameters).
    public var gradientResiduals: [Float]?

    /// A snapshot; optimizer state and position only for checkpoints.
    public init(config: RunConfig, inputSize: Int, scaler: FeatureScaler, classNames: [String]?, parameters: [Float],
                optimizerState: [Float] = [], optimizerSteps: Int = 0, position: TrainingPosition? = nil) {
        self.config = config
        self.inputSize = inputSize
        self.scaler = scaler
        self.classNames = classNames
        self.parameters = parameters
        self.optimizerState = optimizerState
        self.optimizerSteps = optimizerSteps
        self.position = position
    }

    /// The flat parameter layout this snapshot's config implies.
    public var layout: [ParameterEntry] { Sequential.layout(inputSize: inputSize, layers: config.layerSpecs) }
}

/// Reads and writes `ModelSnapshot`s as safetensors.
public enum ModelFile {
    /// The checkpoint tensor of every rank's gradient-compression residual.
    static let residualsName = "gradient_compression.residual"

    /// Version of the metadata layout written by this build.
    public static let formatVersion = "1"

    // MARK: - Writing

    /// The safetensors contents of a snapshot.
    public static func encode(_ snapshot: ModelSnapshot) -> SafeTensorsFile {
        let layout = snapshot.layout
        let count = snapshot.parameters.count
        var tensors: [NamedTensor] = []
        func add(_ prefix: String, _ values: ArraySlice<Float>) {
            for entry in layout {
                let start = values.startIndex + entry.offset
                tensors.append(NamedTensor(name: prefix + entry.name, shape: entry.shape,
                                           values: Array(values[start..<start + entry.count])))
            }
        }
        add("", snapshot.parameters[...])
        if snapshot.position != nil {
            for (index, slot) in snapshot.config.optimizer.rule.slots.enumerated() {
                add("optimizer.\(slot).", snapshot.optimizerState[index * count..<(index + 1) * count])
            }
            if let residuals = snapshot.gradientResiduals, count > 0 {
                tensors.append(NamedTensor(name: residualsName, shape: [residuals.count / count, count], values: residuals))
            }
        }
        var metadata: [String: String] = [
            "format": snapshot.position == nil ? "nntrain-model" : "nntrain-checkpoint",
            "format_version": formatVersion,
            "nntrain_version": NNTrainVersion.string,
            "config": snapshot.config.canonicalJSON,
            "input_size": String(snapshot.inputSize),
            "scaler": json(snapshot.scaler),
        ]
        if let names = snapshot.classNames { metadata["class_names"] = json(names) }
        if let names = snapshot.featureNames { metadata["feature_names"] = json(names) }
        if let position = snapshot.position {
            metadata["epoch"] = String(position.epoch)
            metadata["step_in_epoch"] = String(position.stepInEpoch)
            metadata["global_step"] = String(position.globalStep)
            metadata["optimizer_step"] = String(snapshot.optimizerSteps)
            metadata["world_size"] = String(position.worldSize)
            metadata["position"] = json(position)
            // Every random draw derives from (seed, purpose, index); the
            // generator state is the seed plus the position above.
            metadata["generator"] = "splitmix64 seed=\(snapshot.config.training.seed) epoch=\(position.epoch) step=\(position.globalStep)"
        }
        return SafeTensorsFile(tensors: tensors, metadata: metadata)
    }

    /// Writes atomically (temporary file, fsync, rename, fsync of the directory).
    /// Writes a model or checkpoint file; one holding NaN or ±inf is
    /// refused (the trainer stops before that, so this is the last guard).
    public static func write(_ snapshot: ModelSnapshot, to path: String) throws {
        let file = encode(snapshot)
        if let bad = file.tensors.first(where: { $0.values.contains { !$0.isFinite } }) {
            throw UserError("\(path): not written: \(bad.name) holds NaN or infinite values")
        }
        try userFacing { try file.write(to: path) }
    }

    // MARK: - Reading

    /// Reads and fully checks a model or checkpoint file held in memory.
    public static func decode(bytes: [UInt8], path: String) throws -> ModelSnapshot {
        try decode(userFacing { try SafeTensors.decode(bytes, path: path) }, path: path)
    }

    /// Reads plain weights (`layers.{i}.weight` / `.bias`, from any writer) for `layout`.
    public static func readWeights(path: String, layout: [ParameterEntry]) throws -> [Float] {
        try gather(userFacing { try SafeTensors.read(path: path) }, prefix: "", layout: layout, path: path)
    }

    /// Reads and fully checks a model or checkpoint file.
    public static func read(path: String) throws -> ModelSnapshot {
        try decode(userFacing { try SafeTensors.read(path: path) }, path: path)
    }

    /// Checks a parsed file against the layout its own config implies.
    public static func decode(_ file: SafeTensorsFile, path: String) throws -> ModelSnapshot {
        let meta = file.metadata
        guard let format = meta["format"], format.hasPrefix("nntrain-"), let configJSON = meta["config"] else {
            throw UserError("\(path): not an nntrain model (no nntrain metadata); for plain weights use --init-from")
        }
        guard meta["format_version"] == formatVersion else {
            throw UserError("\(path): format version \(meta["format_version"] ?? "?") is not supported (this build reads \(formatVersion))")
        }
        let config: RunConfig = try decodeJSON(configJSON, "config", path)
        guard let inputText = meta["input_size"], let inputSize = Int(inputText), inputSize > 0 else {
            throw UserError("\(path): metadata 'input_size' is missing or invalid")
        }
        try checkLayers(config, inputSize: inputSize, file: file, path: path)
        do {
            _ = try config.objective()
        } catch let error as UserError {
            throw UserError("\(path): the stored config does not hold together (\(error.message)); the file is damaged")
        }
        let scaler: FeatureScaler = try decodeJSON(meta["scaler"] ?? "", "scaler", path)
        guard scaler.offsets.count == scaler.factors.count,
              scaler.method == .none || scaler.offsets.count == inputSize else {
            throw UserError("\(path): metadata 'scaler' holds \(scaler.offsets.count) offsets and \(scaler.factors.count) factors for a model of \(inputSize) inputs; the file is damaged")
        }
        let classNames: [String]? = try meta["class_names"].map { try decodeJSON($0, "class_names", path) }
        let featureNames: [String]? = try meta["feature_names"].map { try decodeJSON($0, "feature_names", path) }
        var snapshot = ModelSnapshot(config: config, inputSize: inputSize, scaler: scaler, classNames: classNames,
                                     parameters: try gather(file, prefix: "", layout: Sequential.layout(inputSize: inputSize, layers: config.layerSpecs), path: path))
        if let featureNames, featureNames.count != inputSize {
            throw UserError("\(path): metadata 'feature_names' names \(featureNames.count) columns but the model takes \(inputSize) inputs")
        }
        snapshot.featureNames = featureNames
        if format == "nntrain-checkpoint" {
            let position: TrainingPosition = try decodeJSON(meta["position"] ?? "", "position", path)
            guard let stepText = meta["optimizer_step"], let steps = Int(stepText), steps >= 0 else {
                throw UserError("\(path): metadata 'optimizer_step' is missing or invalid")
            }
            snapshot.position = position
            snapshot.optimizerSteps = steps
            for slot in config.optimizer.rule.slots {
                snapshot.optimizerState += try gather(file, prefix: "optimizer.\(slot).", layout: snapshot.layout, path: path)
            }
            if let residuals = file.tensors.first(where: { $0.name == residualsName }) {
                let count = snapshot.parameters.count
                guard residuals.shape.count == 2, residuals.shape[1] == count, residuals.shape[0] == position.worldSize else {
                    throw UserError("\(path): tensor '\(residualsName)' has shape \(residuals.shape), not [\(position.worldSize), \(count)] (ranks × parameters); the file is damaged")
                }
                snapshot.gradientResiduals = residuals.values
            }
        }
        return snapshot
    }

    /// Checks the stored layers as ConfigReader checks a config's (at least one
    /// unit, a dropout rate in [0, 1)) and that their parameters, counted
    /// without overflow, are no more than the file's values: a damaged config
    /// must not size the model past Int or past what the file could fill.
    static func checkLayers(_ config: RunConfig, inputSize: Int, file: SafeTensorsFile, path: String) throws {
        let available = file.tensors.reduce(0) { $0 + $1.values.count }
        var width = inputSize, total = 0
        for (index, spec) in config.layerSpecs.enumerated() {
            switch spec {
            case .dense(let units, _, _, _, _):
                guard units >= 1 else {
                    throw UserError("\(path): the stored config's layer \(index) has \(units) units; the file is damaged")
                }
                let (weights, o1) = units.multipliedReportingOverflow(by: width)
                let (layer, o2) = weights.addingReportingOverflow(units)
                let (sum, o3) = total.addingReportingOverflow(layer)
                guard !o1, !o2, !o3, sum <= available else {
                    throw UserError("\(path): the stored config's layers need more parameters than the file holds (\(available) values); the file is damaged")
                }
                total = sum
                width = units
            case .dropout(let rate):
                guard rate >= 0 && rate < 1 else {
                    throw UserError("\(path): the stored config's layer \(index) drops a fraction \(rate), outside [0, 1); the file is damaged")
                }
            }
        }
    }

    /// Collects `prefix + entry.name` tensors into one flat array, checking shapes.
    public static func gather(_ file: SafeTensorsFile, prefix: String, layout: [ParameterEntry], path: String) throws -> [Float] {
        var flat: [Float] = []
        flat.reserveCapacity(layout.last.map { $0.offset + $0.count } ?? 0)
        for entry in layout {
            let name = prefix + entry.name
            guard let tensor = file[name] else {
                throw UserError("\(path): tensor '\(name)' is missing; the file does not fit a model with this configuration")
            }
            guard tensor.shape == entry.shape else {
                throw UserError("\(path): tensor '\(name)' has shape \(tensor.shape) but the model needs \(entry.shape); the file does not fit this configuration")
            }
            flat += tensor.values
        }
        return flat
    }

    // MARK: - JSON helpers

    /// JSON has no NaN or infinity, and JSONEncoder refuses them; a
    /// checkpoint's running loss overflows to infinity before the gradients
    /// do, and without these names it would be written with an empty position.
    static let nonFinite = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    static func decodeJSON<T: Decodable>(_ text: String, _ key: String, _ path: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw UserError("\(path): metadata '\(key)' is missing or damaged; the file cannot be used")
        }
    }
}
