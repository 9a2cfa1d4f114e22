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
    case sgd(momentum: Float, nesterov: Bool)
    case rmsprop(rho: Float, momentum: Float, epsilon: Float)
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
