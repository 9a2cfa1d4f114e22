// Settings given beside a config (flags), applied on top of it.

/// Replacement values for a few settings; nil leaves the config's value.
public struct ConfigOverrides: Sendable, Equatable {
    /// `training.epochs` (positive).
    public var epochs: Int?
    /// `training.batch_size`, the global batch (positive).
    public var batchSize: Int?
    /// `optimizer.learning_rate` (positive, finite).
    public var learningRate: Float?
    /// `training.seed`.
    public var seed: UInt64?
    /// Turn early stopping on (with the config's settings, or Keras' defaults).
    public var earlyStopping = false
    /// `training.early_stopping.*`; any of them turns early stopping on.
    public var monitor: String?, patience: Int?, minDelta: Double?, restoreBestWeights: Bool?
    /// `training.on_nonfinite` and `training.max_consecutive_skips`.
    public var onNonFinite: NonFiniteAction?, maxConsecutiveSkips: Int?
    /// `training.gradient_compression`.
    public var gradientCompression: GradientCompressionSetting?

    /// Overrides of the given settings.
    public init(epochs: Int? = nil, batchSize: Int? = nil, learningRate: Float? = nil, seed: UInt64? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.seed = seed
    }

    /// `config` with the overrides applied, and each change that made a
    /// difference as `name old → new`. The values are the caller's to check.
    public func apply(to config: RunConfig) -> (config: RunConfig, changes: [String]) {
        var result = config
        var changes: [String] = []
        func set<T: Equatable>(_ value: T?, _ name: String, _ field: WritableKeyPath<RunConfig, T>) {
            guard let value else { return }
            if value != result[keyPath: field] { changes.append("\(name) \(result[keyPath: field]) → \(value)") }
            result[keyPath: field] = value
        }
        set(epochs, "epochs", \.training.epochs)
        set(batchSize, "batch_size", \.training.batchSize)
        set(learningRate, "learning_rate", \.optimizer.learningRate)
        set(seed, "seed", \.training.seed)
        if let onNonFinite, onNonFinite != (result.training.onNonFinite ?? .stop) {
            changes.append("on_nonfinite \((result.training.onNonFinite ?? .stop).rawValue) → \(onNonFinite.rawValue)")
            result.training.onNonFinite = onNonFinite
        }
        if let maxConsecutiveSkips, maxConsecutiveSkips != result.training.maxConsecutiveSkips {
            let old = result.training.maxConsecutiveSkips.map(String.init) ?? "default"
            changes.append("max_consecutive_skips \(old) → \(maxConsecutiveSkips)")
            result.training.maxConsecutiveSkips = maxConsecutiveSkips
        }
        if let gradientCompression, gradientCompression.format != result.training.gradientCompression {
            changes.append("gradient_compression \(result.training.gradientCompression?.rawValue ?? "none") → \(gradientCompression.rawValue)")
            result.training.gradientCompression = gradientCompression.format
        }
        if earlyStopping || monitor != nil || patience != nil || minDelta != nil || restoreBestWeights != nil {
            if result.training.earlyStopping == nil {
                result.training.earlyStopping = EarlyStoppingConfig()
                changes.append("early_stopping on")
            }
            set(monitor, "early_stopping.monitor", \.training.earlyStopping!.monitor)
            set(patience, "early_stopping.patience", \.training.earlyStopping!.patience)
            set(minDelta, "early_stopping.min_delta", \.training.earlyStopping!.minDelta)
            set(restoreBestWeights, "early_stopping.restore_best_weights", \.training.earlyStopping!.restoreBestWeights)
        }
        return (result, changes)
    }
}
