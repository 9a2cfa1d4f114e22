/// The loss as it meets the output layer: which fused op computes it, how
/// labels become targets, and how accuracy is counted.
public struct Objective: Equatable, Sendable {
    public let loss: Loss
    /// The output layer's activation.
    public let outputActivation: Activation
    /// Width of the output layer.
    public let outputs: Int
    /// Classification (labels are class indices) or regression (labels are values).
    public let isClassifier: Bool
    /// A single-layer perceptron with a step or sign output: trained with the
    /// perceptron rule Δw = η (y − ŷ) x instead of backpropagation.
    public let perceptronRule: Bool

    /// Checks that the loss fits the output layer; the message says how to fix it.
    public init(loss: Loss, outputActivation: Activation, outputs: Int, isClassifier: Bool, layerCount: Int) throws {
        self.loss = loss
        self.outputActivation = outputActivation
        self.outputs = outputs
        self.isClassifier = isClassifier
        perceptronRule = !outputActivation.isDifferentiable
        let name = outputActivation.name
        switch loss {
        case .sparseCategoricalCrossEntropy, .categoricalCrossEntropy:
            guard outputActivation == .softmax else {
                throw UserError("loss '\(loss.rawValue)' needs a softmax output layer, but the last layer's activation is '\(name)'; use activation: softmax on the last layer, or loss: \(outputs == 1 ? "binary_crossentropy" : "mse")")
            }
            guard outputs >= 2 else {
                throw UserError("loss '\(loss.rawValue)' needs at least 2 output units (one per class), but the last layer has 1; use binary_crossentropy with a sigmoid output for two classes")
            }
        case .binaryCrossEntropy:
            guard outputActivation == .sigmoid else {
                throw UserError("loss 'binary_crossentropy' needs a sigmoid output layer, but the last layer's activation is '\(name)'; use activation: sigmoid on the last layer")
            }
        case .meanSquaredError:
            break
        }
        if perceptronRule {
            guard layerCount == 1 else {
                throw UserError("activation '\(name)' has no useful derivative (it is flat almost everywhere), so backpropagation cannot train a network that uses it; use it only in a single-layer perceptron (trained with the perceptron rule), or use \(outputActivation == .step ? "sigmoid" : "tanh") instead")
            }
            guard loss == .meanSquaredError, isClassifier else {
                throw UserError("a perceptron with a '\(name)' output trains with the perceptron rule on class labels; use loss: mse with 0/1 labels")
            }
        }
        guard isClassifier || !loss.isCrossEntropy else {
            throw UserError("loss '\(loss.rawValue)' is for classification, but the task is regression; use loss: mse")
        }
    }

    /// Whether the loss applies the output activation itself (and so the last
    /// layer hands it logits): softmax + cross-entropy, sigmoid + binary cross-entropy.
    public var isFused: Bool { loss.isCrossEntropy }

    /// The factor f of the squared-error gradient f·(ŷ − y) handed to
    /// backpropagation: ∂/∂ŷ of the mean over O outputs is 2/O, times
    /// `gradientScale`; the perceptron rule takes (ŷ − y) itself, times `gradientScale`.
    public func squaredErrorGradientFactor(gradientScale: Float) -> Float {
        perceptronRule ? gradientScale : 2 * gradientScale / Float(max(outputs, 1))
    }

    /// Width of one target row on the device.
    public var targetWidth: Int { loss == .sparseCategoricalCrossEntropy ? 1 : outputs }

    /// Number of classes a label may name (0..<classCount).
    public var classCount: Int { outputs == 1 ? 2 : outputs }

    /// Whether a 1-unit output codes the two classes as −1 / +1 (sign, tanh).
    var symmetricBinary: Bool { outputs == 1 && (outputActivation == .sign || outputActivation == .tanh) }

    /// How correct predictions are counted.
    public var accuracy: AccuracyRule {
        guard isClassifier else { return .none }
        if outputs > 1 { return loss == .binaryCrossEntropy ? .threshold(0.5) : .argmax }
        return .threshold(symmetricBinary ? 0 : 0.5)
    }

    /// Denominator of accuracy per sample (binary accuracy counts each unit).
    public var accuracyUnitsPerSample: Int {
        if case .threshold = accuracy { return outputs }
        return 1
    }

    /// Turns `rows` dataset label rows (each `labelWidth` wide) into device
    /// target rows (each `targetWidth` wide): class indices stay indices for
    /// sparse cross-entropy, become one-hot rows for multi-unit outputs, and
    /// ±1 for a sign or tanh unit; regression values are copied.
    public func encodeTargets(labels: UnsafePointer<Float>, labelWidth: Int, rows: Int,
                              into targets: UnsafeMutablePointer<Float>) {
        let width = targetWidth
        if !isClassifier || loss == .sparseCategoricalCrossEntropy || (outputs > 1 && labelWidth == outputs) {
            targets.update(from: labels, count: rows * width)
            return
        }
        if outputs == 1 {
            for r in 0..<rows {
                let label = labels[r * labelWidth]
                targets[r] = symmetricBinary ? (label > 0 ? 1 : -1) : label
            }
            return
        }
        targets.update(repeating: 0, count: rows * width)
        for r in 0..<rows { targets[r * width + Int(labels[r * labelWidth])] = 1 }
    }
}
