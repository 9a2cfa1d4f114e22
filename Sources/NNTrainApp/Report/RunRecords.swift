// What a run directory holds, read for the report: every file optional but
// metrics.jsonl, each decoded leniently (a file of an older run, or one being
// written, leaves its section out with a note instead of failing the page).

import Foundation
import NNTraining
import NNCore

/// One line of metrics.jsonl. Non-finite numbers are `null`, so every figure is optional.
struct EpochLine: Decodable {
    var epoch: Int
    var globalStep: Int?
    var loss, accuracy, mse, mae: Double?
    var valLoss, valAccuracy, valMse, valMae: Double?
    var learningRate, seconds, samplesPerSecond: Double?
    var worldSize: Int?
    var allreduceMs, allreduceCallMsPerStep: Double?
    var rankStepMs, rankWaitMs: [Double?]?

    /// Whether the counters are in the range a run writes (epoch and step
    /// counts far below overflow), so arithmetic on them is safe.
    var isPlausible: Bool {
        (1...100_000_000).contains(epoch) && (globalStep.map { (0...1_000_000_000_000).contains($0) } ?? true)
            && (worldSize.map { (1...1_000_000).contains($0) } ?? true)
    }

    /// A training (`val == false`) or validation metric by its base name.
    func metric(_ name: String, validation: Bool) -> Double? {
        switch (name, validation) {
        case ("loss", false): loss
        case ("loss", true): valLoss
        case ("accuracy", false): accuracy
        case ("accuracy", true): valAccuracy
        case ("mse", false): mse
        case ("mse", true): valMse
        case ("mae", false): mae
        case ("mae", true): valMae
        default: nil
        }
    }
}

/// run.json: the run's facts, written as it starts and again as it ends.
struct RunInfo: Decodable {
    var nntrainVersion: String?
    var worldSize: Int?
    var hosts: [String]?
    var device, accelerator, communicator: String?
    var blasThreads, parameterCount: Int?
    var featureNames, classNames: [String]?
    var startTime, endTime: String?
    var exitReason: String?
    var message: String?
}

/// results.json: what a finished run produced.
struct RunResults: Decodable {
    struct TestMetrics: Decodable {
        var loss, accuracy, mse, mae: Double?
        var samples: Int?
    }
    struct Confusion: Decodable {
        var classes: [String]
        var counts: [[Int]]
    }
    struct EarlyStopping: Decodable {
        var monitor: String?
        var best: Double?
        var bestEpoch, stoppedEpoch: Int?
        var restoredBestWeights: Bool?
    }
    var test: TestMetrics?
    var confusionMatrix: Confusion?
    var parameterChecksum: String?
    var epochsRun: Int?
    var earlyStopping: EarlyStopping?
}

/// One line of histograms.jsonl: per layer, weights and gradient magnitudes.
struct HistogramLine: Decodable {
    struct Buckets: Decodable {
        var edges: [Double]
        var counts: [Int]
        var zeros: Int?
    }
    struct Layer: Decodable {
        var name: String
        var weight: Buckets?
        var gradientMagnitude: Buckets?
    }
    var epoch: Int
    var globalStep: Int?
    var layers: [Layer]
}

/// Everything the report shows, as read from one run directory.
struct RunRecords {
    var directory: String
    var config: RunConfig?
    var epochs: [EpochLine]
    var info: RunInfo?
    var results: RunResults?
    var histograms: [HistogramLine]?
    /// What was missing or unreadable, for the page to say.
    var notes: [String] = []

    /// Whether the run's output is a class.
    var isClassifier: Bool { config.map { $0.task == .classification } ?? (epochs.last?.accuracy != nil) }

    /// Reads `directory`; only a missing metrics.jsonl is an error. `lines`
    /// keeps the JSON-lines files decoded so far, for a writer that reads them again.
    static func read(_ directory: String, lines: JSONLinesCache = JSONLinesCache()) throws -> RunRecords {
        guard let epochs: [EpochLine] = lines.read(directory + "/metrics.jsonl") else {
            let what = FileManager.default.fileExists(atPath: directory) ? "has no metrics.jsonl" : "does not exist"
            throw UserError("\(directory): not a run directory (it \(what)); give a directory that nntrain train wrote (--run-dir, or runs/NAME)")
        }
        // A damaged line may hold any number; keep those a run can write.
        let plausible = epochs.filter(\.isPlausible)
        var records = RunRecords(directory: directory, epochs: plausible)
        records.config = records.decode("config.json", as: RunConfig.self, snakeCase: false)
        records.info = records.decode("run.json", as: RunInfo.self)
        records.results = records.decode("results.json", as: RunResults.self)
        if let histograms: [HistogramLine] = lines.read(directory + "/histograms.jsonl") {
            records.histograms = histograms
        } else {
            records.notes.append("histograms.jsonl is missing (a run of an older nntrain), so the weight and gradient histograms are left out.")
        }
        return records
    }

    /// One file's object, or nil with a note.
    private mutating func decode<T: Decodable>(_ name: String, as type: T.Type, snakeCase: Bool = true) -> T? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
            notes.append("\(name) is missing" + (RunRecords.missingConsequence[name].map { "; " + $0 } ?? "") + ".")
            return nil
        }
        do {
            return try RunRecords.decoder(snakeCase: snakeCase).decode(T.self, from: data)
        } catch {
            notes.append("\(name) could not be read (\(RunRecords.reason(error))), so what it holds is left out.")
            return nil
        }
    }

    private static let missingConsequence = [
        "config.json": "the configuration is unknown",
        "run.json": "the run's facts are unknown (an older nntrain, or the run has not started)",
        "results.json": "the run has not finished, so there are no test metrics or confusion matrix yet",
    ]

    static func decoder(snakeCase: Bool = true) -> JSONDecoder {
        let decoder = JSONDecoder()
        if snakeCase { decoder.keyDecodingStrategy = .convertFromSnakeCase }
        return decoder
    }

    /// The objects of a JSON-lines file; a line that does not decode (one
    /// being appended) is skipped.
    static func jsonLines<T: Decodable>(_ data: Data) -> [T] {
        let decoder = decoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? decoder.decode(T.self, from: Data($0)) }
    }

    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "no '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "unexpected value at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: "not valid JSON"
        }
    }
}

/// JSON-lines files decoded so far. The files grow by appended lines, so a
/// second read decodes only the new ones; a file replaced (another inode) or
/// shortened (a resumed run drops lines) is decoded again from the start.
final class JSONLinesCache {
    private struct Entry {
        var inode: UInt64
        /// Bytes up to and including the last complete line decoded.
        var consumed: UInt64
        var lines: [Any]
    }
    private var entries: [String: Entry] = [:]

    /// Every line of `path` that decodes as `T`, or nil when there is no file.
    func read<T: Decodable>(_ path: String) -> [T]? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let inode = (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
        let size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        var entry = entries[path].flatMap { $0.inode == inode && $0.consumed <= size && $0.lines is [T] ? $0 : nil }
            ?? Entry(inode: inode, consumed: 0, lines: [T]())
        try? handle.seek(toOffset: entry.consumed)
        let data = (try? handle.readToEnd()) ?? Data()
        // Only complete lines: the last may be being written.
        if let end = data.lastIndex(of: UInt8(ascii: "\n")) {
            let complete = data[data.startIndex...end]
            entry.lines += RunRecords.jsonLines(Data(complete)) as [T]
            entry.consumed += UInt64(complete.count)
        }
        entries[path] = entry
        return entry.lines as? [T]
    }
}
