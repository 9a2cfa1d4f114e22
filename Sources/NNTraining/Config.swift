// The resolved run configuration: every default filled in, every value
// checked. Key names follow Keras (`learning_rate`, `beta_1`, `batch_size`).
// The same structure is read from YAML (ConfigReader), stored as canonical
// JSON inside every model and checkpoint, and hashed so ranks can agree.

import Foundation
import NNCore
import NNDistributed
import NNData

/// A complete, validated run configuration.
public struct RunConfig: Codable, Equatable, Sendable {
    public var data: DataConfig
    public var model: ModelConfig
    public var loss: Loss
    /// `classification` or `regression`.
    public var task: Task
    public var optimizer: OptimizerConfig
    public var training: TrainingSection

    /// Whether labels are classes or values.
    public enum Task: String, Codable, Sendable { case classification, regression }
}

/// Where the data comes from and how it is prepared.
public struct DataConfig: Codable, Equatable, Sendable {
    public var train: DataSource
    public var test: DataSource?
    /// Fraction of the training set (its last samples, as in Keras) held out for validation.
    public var validationSplit: Double
    public var scale: ScaleMethod
    /// Names of the classes 0, 1, … for labels that are numbers (IDX files).
    public var classNames: [String]?

    enum CodingKeys: String, CodingKey {
        case train, test, scale
        case validationSplit = "validation_split"
        case classNames = "class_names"
    }
}

/// One dataset: a CSV file, a pair of IDX files, or a synthetic set. Each
/// may be cut to its first `limit` samples.
public enum DataSource: Equatable, Sendable {
    /// A CSV file with a header; `label` names the label column.
    case csv(path: String, label: String, limit: Int? = nil)
    /// An IDX images file and its labels file (gzip or raw), e.g. MNIST.
    case idx(images: String, labels: String, limit: Int? = nil)
    /// A generated set (`SyntheticData.names`), drawn from `seed`.
    case synthetic(name: String, samples: Int, noise: Double, seed: UInt64, limit: Int? = nil)

    /// The format names a config file uses.
    public static let formats = ["csv", "idx", "synthetic"]

    /// Samples of a synthetic set when the config gives none.
    public static let defaultSyntheticSamples = 500

    /// Use only the first `limit` samples (nil: all).
    public var limit: Int? {
        switch self {
        case .csv(_, _, let limit), .idx(_, _, let limit), .synthetic(_, _, _, _, let limit): limit
        }
    }

    /// The label column of a CSV source.
    public var csvLabel: String? {
        if case .csv(_, let label, _) = self { return label }
        return nil
    }

    /// A short description for logs.
    public var summary: String {
        switch self {
        case .csv(let path, let label, _): "\(path) (label '\(label)')"
        case .idx(let images, _, _): images
        case .synthetic(let name, let samples, _, _, _): "synthetic \(name) (\(samples) samples)"
        }
    }
}

/// The layers, input to output (NNCore's descriptions; stored with Keras'
/// names: `{"kind": "dense", "units": 64, "activation": "relu", …}`).
public struct ModelConfig: Equatable, Sendable {
    public var layers: [LayerSpec]

    /// A model of these layers.
    public init(layers: [LayerSpec]) { self.layers = layers }

    /// The dense layers' (units, activation), input to output.
    public var denseLayers: [(units: Int, activation: Activation)] {
        layers.compactMap {
            if case .dense(let units, let activation, _, _, _) = $0 { return (units, activation) }
            return nil
        }
    }
}

/// The optimizer, Keras names and defaults.
public struct OptimizerConfig: Codable, Equatable, Sendable {
    /// The optimizers, Keras names.
    public enum Name: String, Codable, Sendable, CaseIterable { case sgd, rmsprop, adam, adamw }
    public var name: Name
    public var learningRate: Float
    public var momentum: Float
    public var nesterov: Bool
    public var rho: Float
    public var epsilon: Float
    public var beta1: Float
    public var beta2: Float
    public var weightDecay: Float
    public var schedule: ScheduleConfig

    enum CodingKeys: String, CodingKey {
        case name, momentum, nesterov, rho, epsilon, schedule
        case learningRate = "learning_rate"
        case beta1 = "beta_1"
        case beta2 = "beta_2"
        case weightDecay = "weight_decay"
    }

    /// Keras 3 defaults for an optimizer of this name.
    public static func defaults(_ name: Name) -> OptimizerConfig {
        OptimizerConfig(name: name, learningRate: name == .sgd ? 0.01 : 0.001, momentum: 0, nesterov: false,
                        rho: 0.9, epsilon: 1e-7, beta1: 0.9, beta2: 0.999,
                        weightDecay: name == .adamw ? 0.004 : 0, schedule: ScheduleConfig())
    }

    /// The per-element rule this configuration selects.
    public var rule: UpdateRule {
        switch name {
        case .sgd: .sgd(momentum: momentum, nesterov: nesterov)
        case .rmsprop: .rmsprop(rho: rho, momentum: momentum, epsilon: epsilon)
        case .adam, .adamw: .adam(beta1: beta1, beta2: beta2, epsilon: epsilon)
        }
    }

    /// The learning-rate schedule this configuration selects, for a run of
    /// `totalSteps` optimizer steps: a cosine decay without `decay_steps`
    /// spans the whole run after its warm-up; a step decay without it decays
    /// every 1000 steps.
    public func learningRateSchedule(totalSteps: Int) -> LearningRateSchedule {
        let decay: LearningRateSchedule.Decay
        switch schedule.name {
        case .constant: decay = .constant
        case .step: decay = .step(every: schedule.stepInterval, factor: schedule.decayRate)
        case .cosine:
            decay = .cosine(steps: schedule.decaySteps ?? max(1, totalSteps - schedule.warmupSteps), alpha: schedule.alpha)
        }
        return LearningRateSchedule(initialRate: learningRate, decay: decay, warmupSteps: schedule.warmupSteps)
    }
}

/// A learning-rate schedule.
public struct ScheduleConfig: Codable, Equatable, Sendable {
    /// The schedules.
    public enum Name: String, Codable, Sendable, CaseIterable { case constant, step, cosine }
    public var name: Name = .constant
    /// step: decay every this many steps (default 1000); cosine: steps to
    /// decay over (default: the whole run after warm-up).
    public var decaySteps: Int?
    /// step: the factor applied every `decay_steps`.
    public var decayRate: Float = 0.5
    /// cosine: the floor, as a fraction of the initial rate.
    public var alpha: Float = 0
    /// Linear warm-up steps before the decay starts.
    public var warmupSteps: Int = 0

    /// step: steps between two decays (`decay_steps`, 1000 when not given).
    public var stepInterval: Int { decaySteps ?? 1000 }

    /// A constant schedule.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case name, alpha
        case decaySteps = "decay_steps"
        case decayRate = "decay_rate"
        case warmupSteps = "warmup_steps"
    }
}

/// `training.gradient_compression` as a config or flag names it: `none` or a format.
public enum GradientCompressionSetting: String, CaseIterable, Sendable {
    case none, bf16, fp16

    /// The format, nil for `none`.
    public var format: GradientCompression? { GradientCompression(rawValue: rawValue) }
}

/// The training loop's settings.
public struct TrainingSection: Codable, Equatable, Sendable {
    public var epochs: Int
    /// The global batch: with N ranks, each computes batch_size / N samples.
    public var batchSize: Int
    public var seed: UInt64
    /// Reshuffle the training set every epoch (from seed and epoch).
    public var shuffle: Bool
    /// Stop when a metric stops improving (nil: train every epoch).
    public var earlyStopping: EarlyStoppingConfig?
    /// What a step whose gradients or update hold NaN or ±inf does (nil: stop).
    public var onNonFinite: NonFiniteAction?
    /// With `.skip`: stop after this many skipped steps in a row (nil: 10).
    public var maxConsecutiveSkips: Int?
    /// The 16-bit format gradients are summed in, with error feedback (nil: Float32).
    public var gradientCompression: GradientCompression?

    enum CodingKeys: String, CodingKey {
        case epochs, seed, shuffle
        case batchSize = "batch_size"
        case earlyStopping = "early_stopping"
        case onNonFinite = "on_nonfinite"
        case maxConsecutiveSkips = "max_consecutive_skips"
        case gradientCompression = "gradient_compression"
    }

    /// Skipped steps in a row that stop a run when none is configured.
    public static let defaultMaxConsecutiveSkips = 10

    /// Consecutive skips allowed, when steps with NaN or ±inf are skipped (nil: they stop the run).
    public var skipLimit: Int? {
        onNonFinite == .skip ? maxConsecutiveSkips ?? Self.defaultMaxConsecutiveSkips : nil
    }

    /// What a config's `training` section leaves out: one epoch, batch 32, seed 1, shuffled.
    public static let defaults = TrainingSection(epochs: 1, batchSize: 32, seed: 1, shuffle: true, earlyStopping: nil)
}

/// What a step with NaN or ±inf in its gradients or update does.
public enum NonFiniteAction: String, Codable, CaseIterable, Sendable {
    /// Stop every rank at that step, before anything non-finite is applied or saved.
    case stop
    /// Skip the step on every rank (its batch is used up, the optimizer untouched).
    case skip
}

// MARK: - Canonical form

extension RunConfig {
    /// Canonical JSON (sorted keys, no whitespace): stored in model files and
    /// hashed to check that every rank runs the same configuration.
    public var canonicalJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// A 64-bit FNV-1a hash of the canonical JSON.
    public var fingerprint: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in canonicalJSON.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// The NNCore layer descriptions.
    public var layerSpecs: [LayerSpec] { model.layers }

    /// Width of the output layer.
    public var outputUnits: Int { model.denseLayers.last?.units ?? 0 }

    /// The output layer's activation.
    public var outputActivation: Activation { model.denseLayers.last?.activation ?? .linear }

    /// Why early stopping cannot watch `monitor` in this run (nil: it can).
    public func monitorProblem(_ monitor: String) -> String? {
        let hasValidation = data.validationSplit > 0
        let available = EarlyStoppingConfig.monitorable(task: task, validation: hasValidation)
        if available.contains(monitor) { return nil }
        if monitor.hasPrefix("val_"), !hasValidation,
           EarlyStoppingConfig.monitorable(task: task, validation: true).contains(monitor) {
            return "'\(monitor)' needs a validation set; set data.validation_split (e.g. 0.1), or monitor \(available.joined(separator: " or "))"
        }
        return "'\(monitor)' is not a figure of this run; choose one of \(available.joined(separator: ", "))"
    }

    /// Loss and output layer together; validated when the config was read.
    public func objective() throws -> Objective {
        try Objective(loss: loss, outputActivation: outputActivation, outputs: outputUnits,
                      isClassifier: task == .classification,
                      layerCount: model.denseLayers.count)
    }
}
