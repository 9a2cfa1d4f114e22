// Early stopping, as Keras' EarlyStopping callback does it: watch one epoch
// metric, stop when it has not improved for `patience` epochs, and optionally
// go back to the weights of the best epoch. Every rank sees the same reduced
// epoch figures, so every rank decides the same without a message; the state
// travels in checkpoints, so a resumed run decides as the uninterrupted one.

/// `training.early_stopping` (Keras' names and defaults).
public struct EarlyStoppingConfig: Codable, Equatable, Sendable {
    /// Whether a larger value of the monitored figure is better.
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// `max` for accuracies, `min` for everything else.
        case auto
        case min, max
    }

    /// The metrics.jsonl name of the figure watched (`val_loss`).
    public var monitor: String = "val_loss"
    /// Epochs without improvement before stopping.
    public var patience: Int = 0
    /// The smallest change that counts as an improvement.
    public var minDelta: Double = 0
    public var mode: Mode = .auto
    /// At a stop, go back to the parameters of the best epoch (kept in best.safetensors).
    public var restoreBestWeights: Bool = false
    /// Epochs to train before watching (a warm-up).
    public var startFromEpoch: Int = 0

    /// Keras' defaults: `val_loss`, patience 0, no restore.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case monitor, patience, mode
        case minDelta = "min_delta"
        case restoreBestWeights = "restore_best_weights"
        case startFromEpoch = "start_from_epoch"
    }

    /// Whether larger values of the monitored figure are better.
    public var maximizes: Bool {
        switch mode {
        case .min: false
        case .max: true
        case .auto: monitor.hasSuffix("accuracy")
        }
    }

    /// The figures a run of `task` with (or without) a validation split produces.
    public static func monitorable(task: RunConfig.Task, validation: Bool) -> [String] {
        let own = task == .classification ? ["loss", "accuracy"] : ["loss", "mse", "mae"]
        return own + (validation ? own.map { "val_" + $0 } : [])
    }
}

/// Where early stopping stands; saved in every checkpoint.
public struct EarlyStoppingState: Codable, Equatable, Sendable {
    /// The best value seen (nil before the first watched epoch).
    public var best: Double?
    /// 1-based epoch of `best` (0: none yet).
    public var bestEpoch: Int = 0
    /// Epochs since the best one.
    public var wait: Int = 0
    /// 1-based epoch at which the run stopped (nil: it did not).
    public var stoppedEpoch: Int?
    /// The figure watched and whether larger is better: a resume that
    /// watches another figure starts afresh.
    public var monitor: String?, maximizes: Bool?
    /// CRC-32C of the best epoch's parameters, so a restore can tell
    /// best.safetensors is that epoch's and not another run's.
    public var bestChecksum: UInt32?

    /// The state before the first epoch.
    public init() {}

    /// The state before the first epoch of a run watching as `config` says.
    public init(watching config: EarlyStoppingConfig) {
        monitor = config.monitor
        maximizes = config.maximizes
    }

    enum CodingKeys: String, CodingKey {
        case best, wait, monitor, maximizes
        case bestEpoch = "best_epoch"
        case stoppedEpoch = "stopped_epoch"
        case bestChecksum = "best_checksum"
    }
}

/// What early stopping decided at an epoch's end.
public enum EarlyStoppingDecision: Equatable, Sendable {
    /// The figure is not watched yet, or it is absent or not finite.
    case notWatched
    /// A new best: keep these weights.
    case improved
    /// No improvement, still within patience.
    case waiting
    /// Patience ran out: stop after this epoch.
    case stop
}

/// How early stopping ended a run, for results.json and the console.
public struct EarlyStop: Sendable, Hashable {
    public var monitor: String
    public var best: Double
    public var bestEpoch: Int, stoppedEpoch: Int
    /// Whether the final model holds the best epoch's parameters.
    public var restoredBestWeights: Bool
    /// Why they were asked for but not restored (the last epoch's are kept).
    public var restoreProblem: String?
}

/// The rule applied to each epoch's figures.
public struct EarlyStopping: Sendable {
    public let config: EarlyStoppingConfig
    public private(set) var state: EarlyStoppingState

    /// Watching as `config` says, continuing from `state` (a checkpoint's)
    /// when it watched the same figure the same way.
    public init(_ config: EarlyStoppingConfig, state: EarlyStoppingState? = nil) {
        self.config = config
        if let state, state.monitor == config.monitor, state.maximizes == config.maximizes {
            self.state = state
        } else {
            self.state = EarlyStoppingState(watching: config)
        }
    }

    /// Whether a checkpoint's `state` is continued (not started afresh because it watched something else).
    public static func continues(_ state: EarlyStoppingState, under config: EarlyStoppingConfig) -> Bool {
        state.monitor == config.monitor && state.maximizes == config.maximizes
    }

    /// Records the checksum of the parameters of the best epoch.
    public mutating func noteBest(checksum: UInt32) { state.bestChecksum = checksum }

    /// Takes the figures of epoch `record.epoch` and decides.
    public mutating func update(_ record: EpochRecord) -> EarlyStoppingDecision {
        guard record.epoch > config.startFromEpoch,
              let value = record.fields.first(where: { $0.0 == config.monitor })?.1, value.isFinite else { return .notWatched }
        state.wait += 1
        if isImprovement(value) {
            state.best = value
            state.bestEpoch = record.epoch
            state.wait = 0
            return .improved
        }
        guard state.wait >= config.patience, record.epoch > 1 else { return .waiting }
        state.stoppedEpoch = record.epoch
        return .stop
    }

    /// Keras' test: better than the best by more than `min_delta`.
    func isImprovement(_ value: Double) -> Bool {
        guard let best = state.best else { return true }
        let delta = abs(config.minDelta)
        return config.maximizes ? value - delta > best : value + delta < best
    }

    /// The outcome once stopped (nil while training goes on); `problem`
    /// says why the best weights were asked for but not restored.
    public func outcome(restored: Bool, problem: String? = nil) -> EarlyStop? {
        guard let stopped = state.stoppedEpoch, let best = state.best else { return nil }
        return EarlyStop(monitor: config.monitor, best: best, bestEpoch: state.bestEpoch, stoppedEpoch: stopped,
                         restoredBestWeights: restored, restoreProblem: problem)
    }
}
