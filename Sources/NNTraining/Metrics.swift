// The figures of a pass over data, and of one epoch.

import Foundation

/// Metrics of a pass over data, from summed statistics.
public struct Metrics: Sendable, Equatable {
    public var loss: Double
    /// Classifiers only.
    public var accuracy: Double?
    /// Regression only: mean squared and absolute error per output value.
    public var mse: Double?
    public var mae: Double?
    public var samples: Int

    /// Metrics from a statistics buffer summed over `samples` samples.
    public init(statistics s: [Double], samples: Int, isClassifier: Bool, accuracyUnits: Int, outputs: Int) {
        let n = Double(max(samples, 1))
        self.samples = samples
        loss = s[0] / n
        if isClassifier {
            accuracy = s[1] / (n * Double(max(accuracyUnits, 1)))
        } else {
            mse = s[2] / (n * Double(max(outputs, 1)))
            mae = s[3] / (n * Double(max(outputs, 1)))
        }
    }

    /// `(name, value)` pairs in display order, each name prefixed.
    public func named(prefix: String = "") -> [(String, Double)] {
        var result = [(prefix + "loss", loss)]
        if let accuracy { result.append((prefix + "accuracy", accuracy)) }
        if let mse { result.append((prefix + "mse", mse)) }
        if let mae { result.append((prefix + "mae", mae)) }
        return result
    }
}

/// One epoch's figures, as written to metrics.jsonl.
public struct EpochRecord: Sendable {
    /// 1-based.
    public var epoch: Int
    public var training: Metrics
    public var validation: Metrics?
    /// Steps per epoch, and how many of them ran in this process (fewer when
    /// the epoch was resumed part-way).
    public var steps: Int, stepsRun: Int
    public var seconds: Double
    public var samplesPerSecond: Double
    /// The rate the next update will use.
    public var learningRate: Float
    /// Mean time of the gradient allreduce itself, from steps that line up
    /// the ranks at a barrier first (jobs of several ranks).
    public var allreduceMilliseconds: Double?
    /// Mean time per step inside the allreduce call, waits for slower ranks included.
    public var allreduceWaitMilliseconds: Double?

    /// Every figure with its metrics.jsonl name, in file order.
    public var fields: [(String, Double)] {
        var fields: [(String, Double)] = [("epoch", Double(epoch))]
        fields += training.named()
        fields += validation?.named(prefix: "val_") ?? []
        fields += [("learning_rate", Double(learningRate)), ("seconds", seconds), ("samples_per_second", samplesPerSecond)]
        if let ms = allreduceMilliseconds { fields.append(("allreduce_ms", ms)) }
        if let ms = allreduceWaitMilliseconds { fields.append(("allreduce_call_ms_per_step", ms)) }
        return fields
    }
}

/// The one JSON form of figures, for metrics.jsonl and `evaluate --json`:
/// `{"epoch": 3, "loss": 0.301, …}`, numbers as `%.6g`, non-finite values as
/// `null`, and the fields named in `integers` as whole numbers.
public func metricsJSON(_ fields: [(String, Double)], integers: Set<String> = []) -> String {
    let members = fields.map { name, value in
        let text = integers.contains(name) && value.isFinite ? String(Int(value))
            : value.isFinite ? String(format: "%.6g", value) : "null"
        return "\"\(name)\": \(text)"
    }
    return "{" + members.joined(separator: ", ") + "}"
}
