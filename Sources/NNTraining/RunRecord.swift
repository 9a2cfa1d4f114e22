// The record a run leaves beside its checkpoints, for people and scripts:
// run.json (what ran, where, and how it ended), results.json (the final test
// figures and confusion matrix) and histograms.jsonl (per-layer histograms of
// weights and gradient magnitudes at a few epochs). An observer on rank 0.

import Foundation
import NNCore
import NNDistributed
import SafeTensors

/// Facts about a job that only the launcher knows.
public struct JobFacts: Sendable {
    /// The device asked for, and what was found ("auto (auto: no GPU)").
    public var device: String
    /// OpenBLAS threads per rank (nil on a GPU).
    public var blasThreads: Int?
    /// How the gradients' allreduce algorithm was chosen (nil: one rank, nothing to choose).
    public var allreduce: AllreduceRecord?
    /// Whether the allreduce overlaps backward, and why (nil: one rank).
    public var overlap: OverlapRecord?
    /// Whether the optimizer update is sharded over the ranks, and why (nil: one rank).
    public var sharding: ShardingRecord?
    /// The job's ranks on this host and the cores they share (nil: not known).
    public var hostLoad: (ranks: Int, cores: Int)?
    /// Which ranks stood by on hosts with more ranks than cores (nil: every rank trained).
    public var standBy: StandBy?

    /// Facts for run.json.
    public init(device: String, blasThreads: Int?, allreduce: AllreduceRecord? = nil, hostLoad: (ranks: Int, cores: Int)? = nil) {
        self.device = device
        self.blasThreads = blasThreads
        self.allreduce = allreduce
        self.hostLoad = hostLoad
    }

    /// More ranks than cores on this host (nil: not known).
    public var oversubscribed: Bool? { hostLoad.map { $0.ranks > $0.cores } }
}

/// The gradients' allreduce algorithm of a run, and how it was chosen: run.json's `allreduce`.
public struct AllreduceRecord: Equatable, Sendable {
    /// How the algorithm was chosen.
    public enum Source: String, Sendable {
        /// Timed at start-up; the fastest won.
        case measured
        /// The one the run being resumed measured.
        case resumed
        /// `--allreduce-algorithm`.
        case flag
        /// An environment variable.
        case environment
        /// Open MPI's decision rules: asked for, or the algorithm could not be chosen at run time.
        case openMPI = "open_mpi"
    }

    /// Open MPI's number of the algorithm in use (nil: Open MPI decides per call).
    public var algorithm: Int?
    public var source: Source
    /// What asked for it (`--allreduce-algorithm ring`, `NNTRAIN_ALLREDUCE=default`), or why
    /// the algorithm could not be chosen.
    public var detail: String?
    /// The timings, when measured.
    public var measurement: AllreduceMeasurement?

    /// A record of algorithm `algorithm` (nil: Open MPI's rules), chosen by `source`.
    public init(algorithm: Int?, source: Source, detail: String? = nil, measurement: AllreduceMeasurement? = nil) {
        self.algorithm = algorithm
        self.source = source
        self.detail = detail
        self.measurement = measurement
    }

    /// run.json's `allreduce` object.
    var json: [String: Any] {
        var object: [String: Any] = [
            "algorithm": algorithm ?? NSNull(), "name": algorithm.map(AllreduceTuning.name) ?? NSNull(),
            "source": source.rawValue, "detail": detail ?? NSNull(),
        ]
        if let measurement {
            object["floats"] = measurement.count
            object["ranks"] = measurement.ranks
            object["seconds"] = measurement.seconds
            object["timings"] = measurement.timings.map {
                ["algorithm": $0.algorithm, "name": AllreduceTuning.name($0.algorithm),
                 "mean_us": $0.seconds * 1e6, "iterations": $0.iterations] as [String: Any]
            }
        }
        return object
    }

    /// The algorithm an earlier start of the run in `runDirectory` measured
    /// (or reused from its own earlier start), with the world size it was
    /// measured for; nil when run.json holds none.
    public static func measured(inRunDirectory runDirectory: String) -> (algorithm: Int, worldSize: Int)? {
        guard let data = FileManager.default.contents(atPath: runDirectory + "/run.json"),
              let run = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let record = run["allreduce"] as? [String: Any],
              let source = (record["source"] as? String).flatMap(Source.init(rawValue:)),
              source == .measured || source == .resumed,
              let algorithm = record["algorithm"] as? Int, AllreduceTuning.algorithms[algorithm] != nil,
              let worldSize = run["world_size"] as? Int else { return nil }
        return (algorithm, worldSize)
    }
}

/// How a run ended, as run.json's `exit_reason` names it.
public enum ExitReason: String, Sendable {
    case running, finished, stopped, error
    /// Finished before its last epoch because the monitored metric stopped improving.
    case earlyStopped = "early_stopped"
}

/// Writes run.json, results.json and histograms.jsonl (rank 0).
public final class RunRecord: TrainingObserver {
    public let directory: String
    private let facts: JobFacts
    private let warn: (String) -> Void
    private var run: [String: Any] = [:]
    private var warned = false

    /// A record in `runDirectory`; `warn` hears once of a file that could not be written.
    public init(runDirectory: String, facts: JobFacts, warn: @escaping (String) -> Void) {
        directory = runDirectory
        self.facts = facts
        self.warn = warn
    }

    public func wantsParameterSample(epoch: Int, of epochs: Int) -> Bool {
        ParameterSampling.wants(epoch: epoch, of: epochs)
    }

    public func observe(_ event: TrainingEvent) {
        switch event {
        case .started(let start):
            begin(start)
        case .parametersSampled(let sample):
            append(histogramLine(sample), to: "histograms.jsonl")
        case .earlyStopped:
            run["early_stopped"] = true
        case .finished(let result):
            write(results(result), to: "results.json")
        case .modelSaved:
            end(.finished)
        case .stopped:
            end(.stopped)
        default:
            break
        }
    }

    /// Marks the run as ended by an error, with its message.
    public func ended(error message: String) {
        guard !run.isEmpty else { return }
        run["message"] = message
        end(.error)
    }

    // MARK: - run.json

    private func begin(_ start: RunStart) {
        var firstStart = Self.timestamp()
        if let position = start.resumedAt {
            keepLines(of: "histograms.jsonl", throughEpoch: position.epoch)
            // The earlier finish's results no longer hold once training goes on.
            try? FileManager.default.removeItem(atPath: directory + "/results.json")
            if let data = FileManager.default.contents(atPath: directory + "/run.json"),
               let earlier = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let time = earlier["start_time"] as? String {
                firstStart = time
            }
        }
        let config = try? JSONSerialization.jsonObject(with: Data(start.config.canonicalJSON.utf8))
        run = [
            "nntrain_version": NNTrainVersion.string, "config": config ?? NSNull(),
            "world_size": start.worldSize, "hosts": start.hosts,
            "device": facts.device, "blas_threads": facts.blasThreads ?? NSNull(),
            "allreduce": facts.allreduce?.json ?? NSNull(),
            "overlap": facts.overlap?.json ?? NSNull(),
            "optimizer_sharding": facts.sharding?.json ?? NSNull(),
            "accelerator": start.accelerator, "communicator": start.communicator,
            "gradient_reduction": start.gradientReduction, "parameter_count": start.parameterCount,
            "training_samples": start.trainingSamples, "validation_samples": start.validationSamples ?? NSNull(),
            "test_samples": start.testSamples ?? NSNull(),
            "local_ranks": facts.hostLoad?.ranks ?? NSNull(), "host_cores": facts.hostLoad?.cores ?? NSNull(),
            "oversubscribed": facts.oversubscribed ?? NSNull(),
            "standing_by": facts.standBy?.standingBy ?? NSNull(),
            "start_time": firstStart, "end_time": NSNull(), "exit_reason": ExitReason.running.rawValue,
        ]
        if let position = start.resumedAt {
            run["resumed_at_global_step"] = position.globalStep
            run["resumed_time"] = Self.timestamp()
        }
        write(run, to: "run.json")
    }

    private func end(_ reason: ExitReason) {
        guard !run.isEmpty else { return }
        if reason == .finished, run["early_stopped"] as? Bool == true {
            run["exit_reason"] = ExitReason.earlyStopped.rawValue
        } else {
            run["exit_reason"] = reason.rawValue
        }
        run["end_time"] = Self.timestamp()
        run["early_stopped"] = nil
        write(run, to: "run.json")
    }

    // MARK: - results.json

    private func results(_ result: RunResult) -> [String: Any] {
        var object: [String: Any] = [
            "parameter_checksum": String(format: "%08x", result.parameterChecksum),
            "epochs_run": result.epochsCompleted,
            "world_size": result.worldSize,
        ]
        if let test = result.test {
            var metrics: [String: Any] = ["samples": test.samples]
            for (name, value) in test.named() { metrics[name] = value.isFinite ? value : NSNull() }
            object["test"] = metrics
        } else {
            object["test"] = NSNull()
        }
        if let stop = result.earlyStop {
            object["early_stopping"] = ["monitor": stop.monitor, "best": stop.best, "best_epoch": stop.bestEpoch,
                                        "stopped_epoch": stop.stoppedEpoch, "restored_best_weights": stop.restoredBestWeights]
        } else {
            object["early_stopping"] = NSNull()
        }
        if let confusion = result.confusion {
            object["confusion_matrix"] = ["classes": confusion.classes, "counts": confusion.counts]
        } else {
            object["confusion_matrix"] = NSNull()
        }
        return object
    }

    // MARK: - histograms.jsonl

    /// One line: per layer, the weights' histogram and that of log₁₀ of the
    /// nonzero gradient magnitudes (zeros counted apart), bucketed as the
    /// TensorBoard files bucket them.
    private func histogramLine(_ sample: ParameterSample) -> String {
        let layers = sample.layers.map { layer -> [String: Any] in
            let magnitudes = (layer.weightGradient + layer.biasGradient).map { abs($0) }
            let nonzero = magnitudes.filter { $0 > 0 && $0.isFinite }.map { log10($0) }
            return [
                "name": layer.name,
                "weight": Self.json(Histogram(layer.weight)),
                "gradient_magnitude": Self.json(Histogram(nonzero)).merging(["zeros": magnitudes.count - nonzero.count]) { a, _ in a },
            ]
        }
        let object: [String: Any] = ["epoch": sample.epoch, "global_step": sample.globalStep, "layers": layers]
        return Self.json(object, pretty: false) + "\n"
    }

    /// `{"edges": […], "counts": […]}`: one more edge than counts, from the smallest value to the largest.
    static func json(_ histogram: Histogram) -> [String: Any] {
        let edges = histogram.buckets.isEmpty ? [] : [histogram.min] + histogram.bucketLimits
        return ["edges": edges, "counts": histogram.buckets.map { Int($0) }]
    }

    // MARK: - Files

    private func write(_ object: [String: Any], to name: String) {
        do {
            try userFacing { try AtomicFile.write(Array((Self.json(object, pretty: true) + "\n").utf8), to: directory + "/" + name) }
        } catch {
            warnOnce("\(error)")
        }
    }

    private func append(_ line: String, to name: String) {
        do {
            try JSONLinesFile(path: directory + "/" + name).append(line)
        } catch {
            warnOnce("\(error)")
        }
    }

    private func keepLines(of name: String, throughEpoch epoch: Int) {
        do {
            try JSONLinesFile(path: directory + "/" + name).keepEpochs(through: epoch)
        } catch {
            warnOnce("\(error)")
        }
    }

    private func warnOnce(_ message: String) {
        guard !warned else { return }
        warned = true
        warn(message)
    }

    static func json(_ object: Any, pretty: Bool) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: options)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }
}

/// A JSON-lines file a run appends to: one object per line, each with an `epoch`.
struct JSONLinesFile {
    let path: String

    /// Appends `line` (ending in a newline); a failed write (a full disk) throws.
    func append(_ line: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw UserError("\(path): cannot create the file; check that the run directory is writable")
            }
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
        } catch {
            throw UserError("\(path): cannot write (\(error.localizedDescription))")
        }
    }

    /// The lines, without their newlines (none when the file is absent).
    func lines() -> [Substring] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n")
    }

    /// Drops the lines of epochs after `epoch` (and lines that are not
    /// objects with an epoch): on resume, those epochs are written again.
    func keepEpochs(through epoch: Int) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let kept = lines().filter { Self.epoch(of: $0).map { $0 <= epoch } ?? false }
        try userFacing { try AtomicFile.write(Array(kept.map { $0 + "\n" }.joined().utf8), to: path) }
    }

    /// The `epoch` member of one line, if it has one.
    static func epoch(of line: Substring) -> Int? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        return object["epoch"] as? Int
    }
}
