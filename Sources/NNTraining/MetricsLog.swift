// metrics.jsonl: one JSON object per epoch, appended as each epoch ends.

import Foundation
import SafeTensors

/// Writes `RUN/metrics.jsonl` from epoch events (rank 0).
public final class MetricsLog: TrainingObserver {
    /// The file written.
    public let path: String
    private let warn: (String) -> Void

    /// A log at `RUN/metrics.jsonl`; `warn` hears of lines that could not be written.
    public init(runDirectory: String, warn: @escaping (String) -> Void) {
        path = runDirectory + "/metrics.jsonl"
        self.warn = warn
    }

    public func observe(_ event: TrainingEvent) {
        switch event {
        case .started(let start):
            // On resume, drop the lines of epochs the checkpoint had not
            // finished: they are written again.
            if let position = start.resumedAt { keepEpochs(through: position.epoch) }
        case .epochEnded(let record):
            append(line(record))
        default:
            break
        }
    }

    /// `{"epoch": 3, "loss": 0.301, …}`; non-finite values are `null`.
    public func line(_ record: EpochRecord) -> String {
        metricsJSON(record.fields, integers: EpochRecord.integerFields, lists: record.rankFields) + "\n"
    }

    private func append(_ line: String) {
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else {
            warn("\(path): cannot write metrics")
            return
        }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.synchronize()
        try? handle.close()
    }

    private func keepEpochs(through epoch: Int) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let number = object["epoch"] as? Int else { return false }
            return number <= epoch
        }
        do {
            try userFacing { try AtomicFile.write(Array(kept.map { $0 + "\n" }.joined().utf8), to: path) }
        } catch {
            warn("\(error)")
        }
    }
}
