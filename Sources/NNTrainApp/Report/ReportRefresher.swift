// Writing report.html: once by `nntrain report`, or after every epoch by the
// `ReportRefresher` observer while a run trains.

import Foundation
import NNCore
import NNData
import NNTraining
import SafeTensors

/// Builds RUN/report.html from the run directory's files.
final class ReportWriter {
    let directory: String
    var path: String { directory + "/report.html" }
    /// The model's input width when known (a training run knows it), so a
    /// run without two inputs never opens its model file.
    var featureCount: Int?
    private let makeAccelerator: () -> any Accelerator
    private var accelerator: (any Accelerator)?
    /// The training points, loaded once per data source.
    private var points: (source: DataSource, data: Dataset)?
    /// metrics.jsonl and histograms.jsonl as decoded so far.
    private let lines = JSONLinesCache()

    /// A writer for `directory`; `accelerator` is made on first use, for decision regions.
    init(directory: String, accelerator: @escaping () -> any Accelerator) {
        self.directory = directory
        self.makeAccelerator = accelerator
    }

    /// Writes the page atomically and returns its size in bytes. `live`:
    /// whether the page reloads itself; nil takes it from run.json.
    @discardableResult
    func write(live: Bool?) throws -> Int {
        let records = try RunRecords.read(directory, lines: lines)
        let page = ReportPage(records: records, live: live ?? (records.info?.exitReason == "running"), regions: regions(records))
        let bytes = Array(page.html().utf8)
        do {
            // Atomic for a browser reading it, not durable: it is rebuilt from the run's files.
            try AtomicFile.write(bytes, to: path, durable: false)
        } catch {
            throw UserError("\(path): cannot write the report (\(error)); check that the directory is writable")
        }
        return bytes.count
    }

    /// The decision regions, for a model of two inputs.
    func regions(_ records: RunRecords) -> RegionsContent {
        if let featureCount, featureCount != 2 { return .none }
        guard let (modelPath, label) = Self.newestModel(in: directory) else {
            let twoInputs = featureCount == 2 || records.config.map { if case .synthetic = $0.data.train { return true }; return false } == true
            return twoInputs ? .note("No model file yet: the regions appear after the first epoch's checkpoint.") : .none
        }
        do {
            if accelerator == nil { accelerator = makeAccelerator() }
            let model = try LoadedModel(path: modelPath, accelerator: accelerator!)
            guard model.snapshot.inputSize == 2 else { return .none }
            return .html(DecisionRegions.html(model: model, points: try trainingPoints(model.snapshot), modelLabel: label))
        } catch let error as UserError {
            return .note("The decision regions cannot be drawn: \(error.message)")
        } catch {
            return .note("The decision regions cannot be drawn: \(error)")
        }
    }

    /// The training data, unscaled (the map is drawn in the data's own units).
    private func trainingPoints(_ snapshot: ModelSnapshot) throws -> Dataset {
        let source = snapshot.config.data.train
        if let points, points.source == source { return points.data }
        let data = try DataLoading.load(source, task: snapshot.config.task, classNames: snapshot.classNames)
        points = (source, data)
        return data
    }

    /// model.safetensors or the latest checkpoint, whichever was written last, and how to name it.
    static func newestModel(in directory: String) -> (String, String)? {
        var candidates: [(String, String)] = []
        let model = directory + "/model.safetensors"
        if FileManager.default.fileExists(atPath: model) { candidates.append((model, "the final model (model.safetensors)")) }
        let checkpoints = Checkpoints.directory(of: directory)
        if let name = try? String(contentsOfFile: checkpoints + "/latest", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty,
           FileManager.default.fileExists(atPath: checkpoints + "/" + name) {
            candidates.append((checkpoints + "/" + name, "the latest checkpoint (checkpoints/\(name))"))
        }
        return candidates.max { modified($0.0) < modified($1.0) }
    }

    private static func modified(_ path: String) -> Date {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date ?? .distantPast
    }
}

/// Rewrites RUN/report.html after every epoch of a run (rank 0), and once
/// more when it ends. Refreshes take at most `budget` of the time since the
/// run started: with epochs shorter than a refresh's 50-fold (tiny synthetic
/// sets) some epochs are skipped. A failure is one warning; training goes on.
final class ReportRefresher: TrainingObserver {
    /// The share of training time refreshes may take.
    static let budget = 0.02
    let writer: ReportWriter
    private let warn: (String) -> Void
    private var warned = false
    /// An epoch ended; its checkpoint, written next, makes the model file current.
    private var epochEnded = false
    private var started = Date()
    /// Seconds the last refresh took, and all of them.
    private(set) var lastSeconds = 0.0, spentSeconds = 0.0

    init(runDirectory: String, accelerator: @escaping () -> any Accelerator, warn: @escaping (String) -> Void) {
        writer = ReportWriter(directory: runDirectory, accelerator: accelerator)
        self.warn = warn
    }

    func observe(_ event: TrainingEvent) {
        switch event {
        case .started(let start):
            writer.featureCount = start.featureCount
            started = Date()
        case .epochEnded:
            epochEnded = true
        case .checkpointSaved where epochEnded:
            epochEnded = false
            if spentSeconds + lastSeconds <= Self.budget * Date().timeIntervalSince(started) { refresh(live: true) }
        case .modelSaved, .stopped:
            refresh(live: false)
        default:
            break
        }
    }

    /// The run ended with an error: the last page stops reloading.
    func runFailed() {
        refresh(live: false)
    }

    private func refresh(live: Bool) {
        // A run stopped or failed before its first epoch ended has nothing to show yet.
        guard FileManager.default.fileExists(atPath: writer.directory + "/metrics.jsonl") else { return }
        let start = Date()
        defer {
            lastSeconds = Date().timeIntervalSince(start)
            spentSeconds += lastSeconds
        }
        do {
            try writer.write(live: live)
        } catch {
            guard !warned else { return }
            warned = true
            let message = (error as? UserError)?.message ?? "\(error)"
            warn("\(message); the report is not updated for the rest of this run, training continues")
        }
    }
}
