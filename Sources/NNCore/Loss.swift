/// Loss functions, Keras names. Each is averaged over the batch; the
/// gradient handed to backpropagation is the course's output-layer term
/// δ = g'(a)·(ŷ − y), divided by the number of samples (so ∂E/∂w is averaged
/// over the batch as the course's formula writes it).
public enum Loss: String, CaseIterable, Sendable, Codable {
    /// (1/K) Σ_k (ŷ_k − y_k)² per sample; any output activation.
    case meanSquaredError = "mse"
    /// −[y log p + (1 − y) log(1 − p)] averaged over outputs; sigmoid outputs, fused with the sigmoid.
    case binaryCrossEntropy = "binary_crossentropy"
    /// −Σ_k y_k log p_k with one-hot targets; softmax output, fused with the softmax.
    case categoricalCrossEntropy = "categorical_crossentropy"
    /// −log p_label with integer labels; softmax output, fused with the softmax.
    case sparseCategoricalCrossEntropy = "sparse_categorical_crossentropy"

    /// Accepted spellings, Keras' aliases included.
    public init?(name: String) {
        switch name {
        case "mse", "mean_squared_error": self = .meanSquaredError
        case "binary_crossentropy", "bce": self = .binaryCrossEntropy
        case "categorical_crossentropy", "cce": self = .categoricalCrossEntropy
        case "sparse_categorical_crossentropy": self = .sparseCategoricalCrossEntropy
        default: return nil
        }
    }

    /// Whether the loss is a cross-entropy, i.e. the task is classification.
    public var isCrossEntropy: Bool { self != .meanSquaredError }
}

/// How a loss op counts correct predictions for the accuracy metric.
public enum AccuracyRule: Equatable, Sendable {
    /// Not a classifier: count nothing.
    case none
    /// Correct when the row's largest output sits at the target's class.
    case argmax
    /// Correct when output and target fall on the same side of the threshold,
    /// per output unit (Keras' binary accuracy).
    case threshold(Float)
}

/// Slots of the small statistics buffer that loss ops accumulate into, so a
/// device never has to stop for a scalar mid-epoch.
public enum Statistic: Int, CaseIterable {
    /// Σ over samples of the per-sample loss (plus weight penalties).
    case lossSum = 0
    /// Number of correct predictions (accuracy's numerator).
    case correct = 1
    /// Σ (ŷ − y)² over all output values (for regression metrics).
    case squaredErrorSum = 2
    /// Σ |ŷ − y| over all output values.
    case absoluteErrorSum = 3

    /// Length of a statistics buffer.
    public static let width = 4
}
