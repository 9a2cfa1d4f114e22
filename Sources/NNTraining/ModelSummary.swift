// What a model or checkpoint file holds, for a person or a script to look at:
// the layers and their tensors, statistics of every weight tensor, the stored
// configuration, and where a checkpoint stands. `nntrain inspect` prints it.

import Foundation
import NNCore
import SafeTensors

/// Statistics of one tensor's values, computed in Double.
public struct TensorStatistics: Equatable, Sendable {
    /// Number of values.
    public var count: Int
    /// Over the finite values only; nil when there is none.
    public var minimum: Double?, maximum: Double?, mean: Double?
    /// Population standard deviation of the finite values; nil when there is none.
    public var standardDeviation: Double?
    /// Fraction of all values that are exactly zero (0 for an empty tensor).
    public var zeroFraction: Double
    /// Values that are NaN or ±infinity.
    public var nonFinite: Int

    /// The statistics of `values`.
    public init<C: Collection>(_ values: C) where C.Element == Float {
        count = values.count
        var finite = 0, zeros = 0, bad = 0
        var low = Double.infinity, high = -Double.infinity, sum = 0.0
        for value in values {
            guard value.isFinite else {
                bad += 1
                continue
            }
            let v = Double(value)
            finite += 1
            if v == 0 { zeros += 1 }
            low = min(low, v)
            high = max(high, v)
            sum += v
        }
        nonFinite = bad
        zeroFraction = count > 0 ? Double(zeros) / Double(count) : 0
        guard finite > 0 else { return }
        let mean = sum / Double(finite)
        var squares = 0.0
        for value in values where value.isFinite {
            let d = Double(value) - mean
            squares += d * d
        }
        minimum = low
        maximum = high
        self.mean = mean
        standardDeviation = (squares / Double(finite)).squareRoot()
    }
}

/// One stored tensor and its statistics.
public struct TensorSummary: Equatable, Sendable {
    /// `layers.{i}.weight` or `layers.{i}.bias`.
    public var name: String
    /// `[out, in]` for a weight, `[out]` for a bias.
    public var shape: [Int]
    public var statistics: TensorStatistics

    /// Number of values (the product of the shape).
    public var count: Int { shape.reduce(1, *) }
}

/// One layer of the model, input to output.
public struct LayerSummary: Equatable, Sendable {
    /// The layer as the configuration describes it.
    public var spec: LayerSpec
    /// Width of the layer's output.
    public var outputWidth: Int
    /// A dense layer's weight and bias; nil for a dropout layer.
    public var weight: TensorSummary?, bias: TensorSummary?

    /// Parameters the layer holds.
    public var parameterCount: Int { (weight?.count ?? 0) + (bias?.count ?? 0) }
}

/// Everything `nntrain inspect` shows about a model or checkpoint file.
public struct ModelSummary: Sendable {
    /// The file, as given.
    public var path: String
    /// The file's size in bytes.
    public var fileBytes: Int
    /// The decoded contents.
    public var snapshot: ModelSnapshot
    /// The nntrain release that wrote the file (metadata `nntrain_version`), when recorded.
    public var writtenBy: String?
    /// The metadata layout's version (`format_version`).
    public var formatVersion: String
    /// The layers, input to output.
    public var layers: [LayerSummary]

    /// A checkpoint (it has a training position) rather than a final model.
    public var isCheckpoint: Bool { snapshot.position != nil }

    /// Parameters of the whole model.
    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }

    /// Optimizer state slots stored in a checkpoint (`m`, `v`, …), each as
    /// many values as the model has parameters; empty for a final model.
    public var optimizerSlots: [String] { isCheckpoint ? snapshot.config.optimizer.rule.slots : [] }

    /// Reads and checks `path` as `nntrain evaluate` does, and summarizes it.
    /// - Throws: `UserError` naming the path: missing, not safetensors,
    ///   damaged, or not an nntrain model.
    public static func read(path: String) throws -> ModelSummary {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError("\(path): no such file; give a model.safetensors or a checkpoint written by nntrain train")
        }
        let file = try userFacing { try SafeTensors.read(path: path) }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        return try ModelSummary(file, path: path, fileBytes: (attributes?[.size] as? Int) ?? 0)
    }

    /// Summarizes a parsed file after `ModelFile` has checked it.
    public init(_ file: SafeTensorsFile, path: String, fileBytes: Int = 0) throws {
        let snapshot = try ModelFile.decode(file, path: path)
        self.path = path
        self.fileBytes = fileBytes
        self.snapshot = snapshot
        writtenBy = file.metadata["nntrain_version"]
        formatVersion = file.metadata["format_version"] ?? ModelFile.formatVersion
        let entries = snapshot.layout
        var layers: [LayerSummary] = []
        var width = snapshot.inputSize, next = 0
        func tensor(_ entry: ParameterEntry) -> TensorSummary {
            TensorSummary(name: entry.name, shape: entry.shape,
                          statistics: TensorStatistics(snapshot.parameters[entry.offset..<entry.offset + entry.count]))
        }
        for spec in snapshot.config.layerSpecs {
            switch spec {
            case .dense(let units, _, _, _, _):
                layers.append(LayerSummary(spec: spec, outputWidth: units, weight: tensor(entries[next]), bias: tensor(entries[next + 1])))
                next += 2
                width = units
            case .dropout:
                layers.append(LayerSummary(spec: spec, outputWidth: width))
            }
        }
        self.layers = layers
    }
}
