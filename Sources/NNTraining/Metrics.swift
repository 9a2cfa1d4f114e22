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

/// One rank's time in an epoch, per step.
public struct RankTiming: Sendable, Equatable {
    /// Mean milliseconds per step outside the gradient allreduce (batch,
    /// forward, backward, update).
    public var stepMilliseconds: Double
    /// Mean milliseconds per step inside the allreduce call, waiting for
    /// slower ranks included.
    public var waitMilliseconds: Double

    /// The share of a step spent in the allreduce.
    public var allreduceShare: Double { waitMilliseconds / max(stepMilliseconds + waitMilliseconds, 1e-12) }
}

/// One epoch's figures, as written to metrics.jsonl.
public struct EpochRecord: Sendable {
    /// 1-based.
    public var epoch: Int
    /// Optimizer steps taken since the run began, at the end of the epoch.
    public var globalStep: Int
    public var worldSize: Int
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
    /// Every rank's times, by rank (jobs of several ranks).
    public var ranks: [RankTiming]?
    /// Steps skipped for NaN or ±inf (runs with `training.on_nonfinite: skip`).
    public var skippedSteps: Int? = nil

    /// Every scalar figure with its metrics.jsonl name, in file order.
    public var fields: [(String, Double)] {
        var fields: [(String, Double)] = [("epoch", Double(epoch)), ("global_step", Double(globalStep))]
        fields += training.named()
        fields += validation?.named(prefix: "val_") ?? []
        fields += [("learning_rate", Double(learningRate)), ("seconds", seconds), ("samples_per_second", samplesPerSecond),
                   ("world_size", Double(worldSize))]
        if let ms = allreduceMilliseconds { fields.append(("allreduce_ms", ms)) }
        if let ms = allreduceWaitMilliseconds { fields.append(("allreduce_call_ms_per_step", ms)) }
        if let skippedSteps { fields.append(("skipped_steps", Double(skippedSteps))) }
        return fields
    }

    /// The names of `fields` written as whole numbers.
    public static let integerFields: Set<String> = ["epoch", "global_step", "world_size", "skipped_steps"]

    /// Per-rank figures by metrics.jsonl name, each a list by rank.
    public var rankFields: [(String, [Double])] {
        guard let ranks else { return [] }
        return [("rank_step_ms", ranks.map(\.stepMilliseconds)), ("rank_wait_ms", ranks.map(\.waitMilliseconds))]
    }
}

/// The one JSON form of figures, for metrics.jsonl and `evaluate --json`:
/// `{"epoch": 3, "loss": 0.301, …}`, numbers as `%.6g`, non-finite values as
/// `null`, the fields named in `integers` as whole numbers, and `lists` last
/// as arrays (`"rank_step_ms": [8.1, 8.4]`).
public func metricsJSON(_ fields: [(String, Double)], integers: Set<String> = [], lists: [(String, [Double])] = []) -> String {
    func number(_ value: Double, whole: Bool) -> String {
        whole && value.isFinite ? String(Int(value)) : value.isFinite ? String(format: "%.6g", value) : "null"
    }
    let members = fields.map { name, value in "\"\(name)\": \(number(value, whole: integers.contains(name)))" }
        + lists.map { name, values in
            "\"\(name)\": [" + values.map { number($0, whole: false) }.joined(separator: ", ") + "]"
        }
    return "{" + members.joined(separator: ", ") + "}"
}
