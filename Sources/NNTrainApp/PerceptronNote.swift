// The course's lesson about the perceptron, told when a run meets it: a single
// step or sign unit learns exactly the sets that a hyperplane separates.

import NNCore
import NNData
import NNTraining

/// Watches a single-unit perceptron's epochs. When one ends with training
/// errors and the training data is provably not linearly separable, it says
/// so once; when the data is separable and the last epoch still had errors,
/// it says at the end that more epochs may help. The test runs on rank 0,
/// once, at the first epoch with errors. Silent for other models and
/// for data beyond `LinearSeparability.maximumEntries`.
final class PerceptronNote: TrainingObserver {
    private let training: Dataset
    private let say: (String) -> Void
    /// The test's answer, computed at the first epoch with errors.
    private var verdict: LinearSeparability.Verdict??
    private var told = false
    private var lastEpoch: EpochRecord?

    /// A note for `objective`'s model, or nil unless it is one step or sign
    /// unit (two classes) trained with the perceptron rule.
    init?(objective: Objective, training: Dataset, say: @escaping (String) -> Void) {
        guard objective.perceptronRule, objective.outputs == 1 else { return nil }
        self.training = training
        self.say = say
    }

    func observe(_ event: TrainingEvent) {
        switch event {
        case .epochEnded(let record):
            lastEpoch = record
            guard !told, let errors = PerceptronNote.errors(record), errors > 0 else { return }
            if case .notSeparable? = separability() {
                say("the perceptron still misclassifies \(errors) of \(record.training.samples) training samples: this data is not linearly separable (no \(PerceptronNote.boundary(training.featureCount)) puts each class on its own side), so a single perceptron cannot learn it; add a hidden layer with a differentiable activation (see preset xor)")
                told = true
            }
        case .finished:
            guard !told, let record = lastEpoch, let errors = PerceptronNote.errors(record), errors > 0,
                  case .separable? = separability() else { return }
            say("the perceptron misclassified \(errors) of \(record.training.samples) training samples in the last epoch, but a \(PerceptronNote.boundary(training.featureCount)) separates the classes, so a perceptron can classify them all; more epochs may get there")
            told = true
        default:
            break
        }
    }

    private func separability() -> LinearSeparability.Verdict? {
        if let verdict { return verdict }
        let answer = LinearSeparability.test(training)
        verdict = .some(answer)
        return answer
    }

    /// Training samples the epoch got wrong (accuracy counts one unit per sample).
    static func errors(_ record: EpochRecord) -> Int? {
        guard let accuracy = record.training.accuracy, accuracy.isFinite else { return nil }
        return Int(((1 - accuracy) * Double(record.training.samples)).rounded())
    }

    /// What separates classes among `features` inputs: a threshold, a line, a plane, a hyperplane.
    static func boundary(_ features: Int) -> String {
        switch features {
        case 1: "threshold"
        case 2: "line"
        case 3: "plane"
        default: "hyperplane"
        }
    }
}
