import CKernels

/// Activation functions: every one the course teaches, plus linear and leaky ReLU.
///
/// Derivatives are computed from the activation's *output* a = g(z), which is
/// all a layer keeps after its forward pass:
/// sigmoid g' = a(1 − a), tanh g' = 1 − a², ReLU g' = [a > 0],
/// leaky ReLU g' = 1 if a > 0 else slope, softmax's Jacobian-vector product
/// dz_i = a_i (da_i − Σ_j da_j a_j). Step and sign have derivative zero almost
/// everywhere, so they cannot be trained by backpropagation; a single-layer
/// perceptron with a step or sign output trains with the perceptron rule.
public enum Activation: Equatable, Hashable, Sendable {
    /// g(z) = z.
    case linear
    /// g(z) = 1 if z ≥ 0 else 0 (the perceptron's Heaviside step).
    case step
    /// g(z) = 1 if z ≥ 0 else −1.
    case sign
    /// g(z) = 1 / (1 + e^−z).
    case sigmoid
    /// g(z) = (e^2z − 1) / (e^2z + 1).
    case tanh
    /// g(z) = max(0, z).
    case relu
    /// g(z) = z if z ≥ 0 else slope·z (Keras' default slope is 0.2).
    case leakyRelu(slope: Float)
    /// g(z)_i = e^z_i / Σ_j e^z_j over each row.
    case softmax

    /// The names a config file uses, Keras spelling.
    public static let names = ["linear", "step", "sign", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]

    /// Parses a Keras-style name; `leaky_relu` takes Keras' default slope 0.2.
    public init?(name: String) {
        switch name {
        case "linear": self = .linear
        case "step": self = .step
        case "sign": self = .sign
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "relu": self = .relu
        case "leaky_relu": self = .leakyRelu(slope: 0.2)
        case "softmax": self = .softmax
        default: return nil
        }
    }

    /// The config-file name.
    public var name: String {
        switch self {
        case .linear: "linear"
        case .step: "step"
        case .sign: "sign"
        case .sigmoid: "sigmoid"
        case .tanh: "tanh"
        case .relu: "relu"
        case .leakyRelu: "leaky_relu"
        case .softmax: "softmax"
        }
    }

    /// Whether backpropagation can pass through this activation.
    public var isDifferentiable: Bool { self != .step && self != .sign }

    /// A small integer naming the kind, as the C and CUDA kernels take it
    /// (`nn_activation_kind` in nn_rules.h).
    public var code: Int32 {
        let kind: nn_activation_kind
        switch self {
        case .linear: kind = NN_LINEAR
        case .step: kind = NN_STEP
        case .sign: kind = NN_SIGN
        case .sigmoid: kind = NN_SIGMOID
        case .tanh: kind = NN_TANH
        case .relu: kind = NN_RELU
        case .leakyRelu: kind = NN_LEAKY_RELU
        case .softmax: kind = NN_SOFTMAX
        }
        return Int32(kind.rawValue)
    }

    /// The leaky slope (0 for every other kind).
    public var slope: Float {
        if case .leakyRelu(let s) = self { return s }
        return 0
    }
}
