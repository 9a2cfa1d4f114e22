#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The learning rate as a function of the step: an optional linear warm-up,
/// then a decay.
public struct LearningRateSchedule: Equatable, Sendable {
    /// How the rate decays after warm-up.
    public enum Decay: Equatable, Sendable {
        /// η(s) = η₀.
        case constant
        /// η(s) = η₀ · factor^⌊s / every⌋ (step decay).
        case step(every: Int, factor: Float)
        /// η(s) = η₀ · ((1 − α) · ½(1 + cos(π · min(s, steps) / steps)) + α) (Keras CosineDecay).
        case cosine(steps: Int, alpha: Float)
    }

    public var initialRate: Float
    public var decay: Decay
    /// Steps of linear warm-up from η₀/warmup to η₀ (0 for none).
    public var warmupSteps: Int

    /// A schedule starting at `initialRate`.
    public init(initialRate: Float, decay: Decay = .constant, warmupSteps: Int = 0) {
        self.initialRate = initialRate
        self.decay = decay
        self.warmupSteps = warmupSteps
    }

    /// The rate for the update that follows `completedSteps` earlier updates.
    public func rate(completedSteps s: Int) -> Float {
        if s < warmupSteps { return initialRate * Float(s + 1) / Float(warmupSteps) }
        let t = s - warmupSteps
        switch decay {
        case .constant:
            return initialRate
        case .step(let every, let factor):
            return initialRate * Float(pow(Double(factor), Double(t / max(every, 1))))
        case .cosine(let steps, let alpha):
            let progress = Double(min(t, steps)) / Double(max(steps, 1))
            let cosine = 0.5 * (1 + cos(Double.pi * progress))
            return initialRate * Float((1 - Double(alpha)) * cosine + Double(alpha))
        }
    }
}

/// An optimizer: an update rule, its state in one flat buffer (slot-major,
/// each slot laid out like the parameters), a schedule and a step count.
public final class Optimizer {
    public let rule: UpdateRule
    public let schedule: LearningRateSchedule
    /// Decoupled weight decay λ (Keras `weight_decay`).
    public let weightDecay: Float
    /// All state: (slots × P); slot i is row i.
    public let state: Tensor
    /// Updates applied so far (Adam's t after the next update is steps + 1).
    public var steps: Int = 0
    private let accelerator: any Accelerator
    /// Each slot as a (1 × P) view, in `UpdateRule.slots` order.
    private var slotViews: [Tensor] = []

    /// An optimizer with zeroed state for `parameterCount` parameters on `accelerator`.
    public init(rule: UpdateRule, schedule: LearningRateSchedule, weightDecay: Float,
                parameterCount: Int, accelerator: any Accelerator) {
        self.rule = rule
        self.schedule = schedule
        self.weightDecay = weightDecay
        self.accelerator = accelerator
        let slots = rule.slots.count
        state = Tensor(storage: accelerator.allocate(slots * parameterCount), offset: 0,
                       rows: slots, columns: parameterCount)
        slotViews = (0..<slots).map(slot)
    }

    /// One state slot as a (1 × P) view.
    public func slot(_ index: Int) -> Tensor {
        Tensor(storage: state.storage, offset: index * state.columns, rows: 1, columns: state.columns)
    }

    /// The learning rate the next update will use.
    public var currentRate: Float { schedule.rate(completedSteps: steps) }

    /// Applies one update to `parameters` from `gradients`, checked by the
    /// `FiniteGuard` record `guardRecord` as step `step` (see `Accelerator.update`).
    ///
    /// With `range`, only that range of the flat layout is updated (the
    /// parameters, gradients and state there); a guard record then counts
    /// indices from the range's start. Every rule is element-wise, so the
    /// ranges of one step, updated anywhere, give the whole update's values.
    public func apply(parameters: Tensor, gradients: Tensor, guardRecord: Tensor? = nil, step: Int = 0,
                      range: Range<Int>? = nil) {
        let rate = currentRate
        steps += 1
        let (parameters, gradients, slots) = views(parameters, gradients, range)
        accelerator.update(rule.constants(step: steps, learningRate: rate, weightDecay: weightDecay),
                           parameters: parameters, gradients: gradients, state: slots,
                           guarded: guardRecord.map { UpdateGuard(record: $0, step: step) })
    }

    /// The parameters, gradients and state slots an update reads: whole, or their `range`.
    private func views(_ parameters: Tensor, _ gradients: Tensor, _ range: Range<Int>?) -> (Tensor, Tensor, [Tensor]) {
        guard let range else { return (parameters, gradients, slotViews) }
        return (Self.view(parameters, range), Self.view(gradients, range), slotViews.map { Self.view($0, range) })
    }

    /// `range` of a (1 × P) tensor, as a (1 × range.count) view.
    public static func view(_ flat: Tensor, _ range: Range<Int>) -> Tensor {
        Tensor(storage: flat.storage, offset: flat.offset + range.lowerBound, rows: 1, columns: range.count)
    }

    /// Computes the next update without applying it, and records it in
    /// `guardRecord` as step `step` if a weight or state value would be
    /// NaN or ±inf. The optimizer's state and step count are unchanged.
    public func trial(parameters: Tensor, gradients: Tensor, guardRecord: Tensor, step: Int) {
        accelerator.update(rule.constants(step: steps + 1, learningRate: currentRate, weightDecay: weightDecay),
                           parameters: parameters, gradients: gradients, state: slotViews,
                           guarded: UpdateGuard(record: guardRecord, step: step, trial: true))
    }
}
