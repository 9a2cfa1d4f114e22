// What rank 0 prints: Keras-style epoch lines, a live progress bar on a
// terminal, plain lines otherwise. Every line is flushed as it is written, so
// output read from a file (a Slurm log) keeps its order with standard error.

import Foundation
import NNDistributed
import NNTraining
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's terminal output. Other ranks hold a silent console.
public final class Console: TrainingObserver {
    public let enabled: Bool
    /// Whether the live bar is drawn (a terminal, or asked for).
    public let drawsBar: Bool
    /// Why the accelerator has the threads or device it has, for the start-up lines.
    public var computeNote = ""
    /// Appended to the data line: how the ranks hold the data (empty: each loaded its own).
    public var dataNote = ""
    /// How many ranks of the job stand by (see `StandBy`).
    public var standingBy = 0
    /// How the gradients' allreduce algorithm was chosen, for the start-up lines (nil: one rank).
    public var allreduce: AllreduceRecord?
    /// Whether the allreduce overlaps backward, for the start-up lines (nil: one rank).
    public var overlap: OverlapRecord?
    /// Whether the optimizer update is sharded, for the start-up lines (nil: one rank).
    public var sharding: ShardingRecord?
    private var lastDraw = 0.0
    private var barVisible = false

    /// A console printing only when `enabled` (rank 0), with the live bar when `drawsBar`.
    public init(enabled: Bool, drawsBar: Bool) {
        self.enabled = enabled
        self.drawsBar = drawsBar
    }

    /// Prints one line on standard output.
    public func line(_ text: String) {
        guard enabled else { return }
        clearBar()
        Console.write(text + "\n", to: stdout)
    }

    /// Prints a warning on standard error.
    public func warn(_ text: String) {
        guard enabled else { return }
        clearBar()
        Console.write("nntrain: warning: " + text + "\n", to: stderr)
    }

    /// Prints a warning on standard error from any rank (the caller decides which).
    public static func warning(_ text: String) {
        write("nntrain: warning: " + text + "\n", to: stderr)
    }

    /// Prints an error on standard error, from any rank (the caller decides which).
    public static func error(_ text: String) {
        write("nntrain: error: " + text + "\n", to: stderr)
    }

    // MARK: - Training events

    public func wantsBatchProgress(step: Int, of steps: Int) -> Bool {
        guard enabled, drawsBar else { return false }
        return Date().timeIntervalSinceReferenceDate - lastDraw >= 0.1 || step == steps
    }

    public func observe(_ event: TrainingEvent) {
        switch event {
        case .started(let start):
            for text in Console.describe(start, computeNote: computeNote, dataNote: dataNote, allreduce: allreduce, overlap: overlap, sharding: sharding) { line(text) }
        case .epochStarted(let epoch, let epochs):
            line("Epoch \(epoch)/\(epochs)")
        case .batchEnded(let progress):
            drawBar(progress)
        case .epochEnded(let record):
            line(Console.epochLine(record))
        case .checkpointSaved, .parametersSampled:
            break
        case .earlyStopped(let stop):
            line("Epoch \(stop.stoppedEpoch): early stopping: \(stop.monitor) has not improved on \(String(format: "%.4f", stop.best)) (epoch \(stop.bestEpoch)) for \(stop.stoppedEpoch - stop.bestEpoch) epoch(s)")
            if stop.restoredBestWeights { line("restoring the weights of epoch \(stop.bestEpoch) (best.safetensors)") }
            if let problem = stop.restoreProblem { warn("\(problem); keeping the weights of epoch \(stop.stoppedEpoch)") }
        case .stopped(let point):
            line("")
            // The job as launched: the ranks that stood by come back to stand by again.
            let ranks = point.worldSize + standingBy
            let launcher = ranks > 1 ? "mpirun -n \(ranks) " : ""
            line("nntrain: stopped by signal at epoch \(point.epoch), step \(point.stepInEpoch)/\(point.steps); checkpoint written. Resume with: \(launcher)nntrain train --run-dir \(point.runDirectory) --resume")
        case .finished(let result):
            if result.worldSize > 1 {
                let stood = standingBy > 0 ? " that trained (\(standingBy) stood by)" : ""
                line("parameters: CRC-32C \(String(format: "%08x", result.parameterChecksum)), identical on all \(result.worldSize) ranks" + stood)
            }
            if let test = result.test { line("test" + Console.format(test.named())) }
        case .modelSaved(let path):
            line("saved \(path)")
        }
    }

    private func drawBar(_ progress: BatchProgress) {
        lastDraw = Date().timeIntervalSinceReferenceDate
        let eta = progress.step > 0 ? progress.elapsed / Double(progress.step) * Double(progress.steps - progress.step) : 0
        let text = "\r" + Console.counter(progress.step, progress.steps) + " " + Console.bar(progress.step, progress.steps)
            + " - ETA: " + Console.duration(eta) + Console.format(progress.metrics.named()) + "\u{1B}[K"
        Console.write(text, to: stdout)
        barVisible = true
    }

    private func clearBar() {
        guard barVisible else { return }
        Console.write("\r\u{1B}[K", to: stdout)
        barVisible = false
    }

    /// Writes and flushes, so standard output and standard error interleave
    /// in the order they were written even when both go to one file.
    static func write(_ text: String, to stream: UnsafeMutablePointer<FILE>) {
        fputs(text, stream)
        fflush(stream)
    }

    // MARK: - Formatting

    /// The start-up lines: data, model, optimizer, compute, run directory.
    static func describe(_ start: RunStart, computeNote: String, dataNote: String = "", allreduce: AllreduceRecord? = nil,
                         overlap: OverlapRecord? = nil, sharding: ShardingRecord? = nil) -> [String] {
        let config = start.config
        var shape = ["\(start.featureCount)"]
        for spec in config.layerSpecs {
            switch spec {
            case .dense(let units, let activation, _, _, _): shape.append("dense \(units) \(activation.name)")
            case .dropout(let rate): shape.append("dropout \(rate)")
            }
        }
        let sizes = "\(start.trainingSamples) training" + (start.validationSamples.map { ", \($0) validation" } ?? "")
            + (start.testSamples.map { ", \($0) test" } ?? "")
        let world = start.worldSize
        let batch = "batch \(config.training.batchSize)" + (world > 1 ? " (\(config.training.batchSize / world) per rank)" : "")
        let choices: [String] = [allreduce.map(describe), sharding.flatMap { describe($0, ranks: world) }, overlap.flatMap(describe)]
            .compactMap { $0 }
        return [
            "data: \(config.data.train.summary): \(sizes) samples, \(start.featureCount) features" + (dataNote.isEmpty ? "" : "; \(dataNote)"),
            "model: " + shape.joined(separator: " → ") + " (\(start.parameterCount) parameters), loss \(config.loss.rawValue)",
            "optimizer: \(describe(config.optimizer)); \(batch), \(config.training.epochs) epoch\(config.training.epochs == 1 ? "" : "s"), seed \(config.training.seed)",
            "compute: \(start.accelerator) per rank\(computeNote.isEmpty ? "" : " (\(computeNote))"); \(start.communicator)" + (world > 1 ? "; gradients: \(start.gradientReduction)" : ""),
        ] + choices + [
            "run directory: \(start.runDirectory)",
        ]
    }

    /// The allreduce line: `allreduce: measured on 235,146 floats × 2 ranks:
    /// basic linear 756 µs, …, rabenseifner 357 µs → ring (0.9 s)`, or the
    /// algorithm and who chose it when nothing was measured.
    static func describe(_ record: AllreduceRecord) -> String {
        let name = record.algorithm.map(AllreduceTuning.name) ?? "Open MPI's decision rules"
        guard let measurement = record.measurement else {
            let how = record.source == .resumed ? "not measured again" : "not measured"
            return "allreduce: \(name)" + (record.detail.map { " (\($0))" } ?? "") + ", \(how)"
        }
        let times = measurement.timings.map { "\(AllreduceTuning.name($0.algorithm)) \(microseconds($0.seconds))" }
        return "allreduce: measured on \(grouped(measurement.count)) floats × \(measurement.ranks) ranks: "
            + times.joined(separator: ", ") + " → \(name) (\(String(format: "%.1f", measurement.seconds)) s)"
    }

    /// The overlap line, when there was a choice: `overlap: measured per
    /// pass: one allreduce after backward 46.10 ms, 2 buckets during
    /// backward 44.00 ms → overlapped`; nil when overlap cannot apply.
    static func describe(_ record: OverlapRecord) -> String? {
        let way = record.overlapped ? "overlapped (\(record.buckets) buckets)" : "one allreduce after backward"
        switch record.source {
        case .inapplicable: return nil
        case .flag, .resumed: return "overlap: \(way) (\(record.detail ?? record.source.rawValue))"
        case .measured:
            func ms(_ s: Double?) -> String { s.map { String(format: "%.2f ms", $0 * 1000) } ?? "–" }
            return "overlap: measured per pass: one allreduce after backward \(ms(record.fusedSeconds)), "
                + "\(record.buckets) buckets during backward \(ms(record.overlappedSeconds)) → \(record.overlapped ? "overlapped" : "one allreduce")"
        }
    }

    /// The sharding line, when there was a choice: `optimizer update:
    /// measured per step: whole on every rank 1.52 ms, sharded over 4 ranks
    /// 1.41 ms → sharded`; nil when sharding cannot apply or the model is too small.
    static func describe(_ record: ShardingRecord, ranks: Int) -> String? {
        let way = record.sharded ? "sharded over \(ranks) ranks" : "whole on every rank"
        switch record.source {
        case .inapplicable, .small: return nil
        case .flag, .resumed: return "optimizer update: \(way) (\(record.detail ?? record.source.rawValue))"
        case .measured:
            func ms(_ s: Double?) -> String { s.map { String(format: "%.2f ms", $0 * 1000) } ?? "–" }
            return "optimizer update: measured per step: whole on every rank \(ms(record.wholeSeconds)), "
                + "sharded over \(ranks) ranks \(ms(record.shardedSeconds)) → \(record.sharded ? "sharded" : "whole")"
        }
    }

    /// `412 µs`, `12,345 µs`.
    static func microseconds(_ seconds: Double) -> String {
        seconds.isFinite ? "\(grouped(Int((seconds * 1e6).rounded()))) µs" : "–"
    }

    /// `235,146`: thousands separated by commas.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, digit) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// The whole optimizer: `sgd, learning_rate 0.01, momentum 0.9, nesterov; schedule cosine (…)`.
    static func describe(_ optimizer: OptimizerConfig) -> String {
        var parts = ["\(optimizer.name.rawValue)", "learning_rate \(optimizer.learningRate)"]
        switch optimizer.name {
        case .sgd:
            if optimizer.momentum > 0 { parts.append("momentum \(optimizer.momentum)") }
            if optimizer.nesterov { parts.append("nesterov") }
        case .rmsprop:
            parts.append("rho \(optimizer.rho)")
            if optimizer.momentum > 0 { parts.append("momentum \(optimizer.momentum)") }
            parts.append("epsilon \(optimizer.epsilon)")
        case .adam, .adamw:
            parts += ["beta_1 \(optimizer.beta1)", "beta_2 \(optimizer.beta2)", "epsilon \(optimizer.epsilon)"]
        }
        if optimizer.weightDecay > 0 { parts.append("weight_decay \(optimizer.weightDecay)") }
        let schedule = optimizer.schedule
        var decay: String
        switch schedule.name {
        case .constant: decay = "constant"
        case .step: decay = "step (×\(schedule.decayRate) every \(schedule.stepInterval) steps)"
        case .cosine: decay = "cosine (over \(schedule.decaySteps.map { "\($0) steps" } ?? "the run"), alpha \(schedule.alpha))"
        }
        if schedule.warmupSteps > 0 { decay += ", warm-up \(schedule.warmupSteps) steps" }
        return parts.joined(separator: ", ") + ", schedule " + decay
    }

    /// `422/422 [====…] - 1s 2ms/step - loss: 0.3012 - … - 98765 samples/s`.
    static func epochLine(_ record: EpochRecord) -> String {
        let perStep = record.seconds / Double(max(record.stepsRun, 1))
        var metrics = record.training.named()
        if let validation = record.validation { metrics += validation.named(prefix: "val_") }
        return counter(record.steps, record.steps) + " " + bar(record.steps, record.steps) + " - "
            + duration(record.seconds) + " " + String(format: "%.0fms/step", perStep * 1000)
            + format(metrics) + String(format: " - %.0f samples/s", record.samplesPerSecond)
    }

    /// `  12/422`, right-aligned to the total's width.
    public static func counter(_ step: Int, _ total: Int) -> String {
        let width = String(total).count
        return String(repeating: " ", count: max(0, width - String(step).count)) + "\(step)/\(total)"
    }

    /// `[=========>....................]`, 30 wide.
    public static func bar(_ step: Int, _ total: Int) -> String {
        let width = 30
        let filled = total > 0 ? min(width, width * step / total) : width
        if filled >= width { return "[" + String(repeating: "=", count: width) + "]" }
        return "[" + String(repeating: "=", count: filled) + ">" + String(repeating: ".", count: width - filled - 1) + "]"
    }

    /// ` - loss: 0.4521 - accuracy: 0.8412`.
    public static func format(_ metrics: [(String, Double)]) -> String {
        metrics.map { " - \($0.0): \(String(format: "%.4f", $0.1))" }.joined()
    }

    /// `3s`, `2m 05s`, `1h 02m`.
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm %02ds", s / 60, s % 60) }
        return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60)
    }
}
