#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Optimizer update rules, applied per element over the flat parameter buffer.
///
/// Each rule follows Keras 3 exactly, defaults included; η is the learning
/// rate at this step, g the (batch-averaged, all-reduced) gradient, t the
/// 1-based step count. Decoupled weight decay λ, when set, first applies
/// w ← w − η·λ·w (Keras' `weight_decay`; AdamW is Adam with λ = 0.004).
///
/// - SGD: without momentum w ← w − η g. With momentum μ: m ← μ m − η g, then
///   w ← w + m, or with Nesterov w ← w + μ m − η g.
/// - RMSprop (the course's "MSPro"): v ← ρ v + (1 − ρ) g²;
///   Δ = η g / √(v + ε); with momentum μ: m ← μ m + Δ, w ← w − m, else w ← w − Δ.
/// - Adam: m ← m + (1 − β₁)(g − m), v ← v + (1 − β₂)(g² − v),
///   α = η √(1 − β₂ᵗ) / (1 − β₁ᵗ), w ← w − α m / (√v + ε).
public enum UpdateRule: Equatable, Sendable {
    /// Stochastic gradient descent, with momentum μ when μ > 0 (Nesterov's when asked).
    case sgd(momentum: Float, nesterov: Bool)
    /// RMSprop with decay ρ, momentum μ (none when 0) and ε inside the square root.
    case rmsprop(rho: Float, momentum: Float, epsilon: Float)
    /// Adam with moment decays β₁, β₂ and ε outside the square root.
    case adam(beta1: Float, beta2: Float, epsilon: Float)

    /// Names of the state buffers the rule keeps, one flat buffer each, laid
    /// out like the parameters. Checkpoints store them as `optimizer.SLOT.…`.
    public var slots: [String] {
        switch self {
        case .sgd(let momentum, _): momentum > 0 ? ["momentum"] : []
        case .rmsprop(_, let momentum, _): momentum > 0 ? ["rms", "momentum"] : ["rms"]
        case .adam: ["m", "v"]
        }
    }
}

/// One optimizer step as the plain numbers a backend's update loop takes:
/// the rule's hyper-parameters with this step's learning rate, weight decay
/// and (for Adam) bias correction folded in, so every backend applies the
/// same constants and none recomputes them.
///
/// `keep` = 1 − η·λ scales the weights first (decoupled weight decay).
public enum UpdateStep: Equatable, Sendable {
    /// Without a momentum slot: w ← keep·w − η·g. With one (μ > 0):
    /// m ← μ·m − η·g, then w ← keep·w + (look·m − direct·g), where
    /// look = 1, direct = 0 for plain momentum and look = μ, direct = η for Nesterov.
    case sgd(learningRate: Float, momentum: Float, look: Float, direct: Float, keep: Float)
    /// v ← ρ·v + (1 − ρ)·g², Δ = η·g / √(v + ε); with a momentum slot (μ > 0)
    /// m ← μ·m + Δ, w ← keep·w − m, else w ← keep·w − Δ.
    case rmsprop(learningRate: Float, rho: Float, oneMinusRho: Float, epsilon: Float, momentum: Float, keep: Float)
    /// m ← m + (1 − β₁)(g − m), v ← v + (1 − β₂)(g² − v),
    /// w ← keep·w − α·m / (√v + ε), α the bias-corrected step size.
    case adam(alpha: Float, oneMinusBeta1: Float, oneMinusBeta2: Float, epsilon: Float, keep: Float)

    /// How many state slots the step reads and writes (`UpdateRule.slots.count`).
    public var slotCount: Int {
        switch self {
        case .sgd(_, let momentum, _, _, _): momentum > 0 ? 1 : 0
        case .rmsprop(_, _, _, _, let momentum, _): momentum > 0 ? 2 : 1
        case .adam: 2
        }
    }
}

extension UpdateRule {
    /// The constants of update number `step` (1-based) at learning rate
    /// `learningRate` with decoupled weight decay `weightDecay`.
    public func constants(step: Int, learningRate: Float, weightDecay: Float) -> UpdateStep {
        let keep = 1 - learningRate * weightDecay
        switch self {
        case .sgd(let momentum, let nesterov):
            return .sgd(learningRate: learningRate, momentum: momentum, look: nesterov ? momentum : 1,
                        direct: nesterov ? learningRate : 0, keep: keep)
        case .rmsprop(let rho, let momentum, let epsilon):
            return .rmsprop(learningRate: learningRate, rho: rho, oneMinusRho: 1 - rho, epsilon: epsilon,
                            momentum: momentum, keep: keep)
        case .adam(let beta1, let beta2, let epsilon):
            // Keras' α = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ), in Double so that β^t keeps its precision at large t.
            let t = Double(step)
            let alpha = Float(Double(learningRate) * (1 - pow(Double(beta2), t)).squareRoot() / (1 - pow(Double(beta1), t)))
            return .adam(alpha: alpha, oneMinusBeta1: 1 - beta1, oneMinusBeta2: 1 - beta2, epsilon: epsilon, keep: keep)
        }
    }
}
