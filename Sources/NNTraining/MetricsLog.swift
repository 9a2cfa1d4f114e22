// metrics.jsonl: one JSON object per epoch, appended as each epoch ends;
// metrics.csv: the same figures as a table, rewritten from it each epoch.

import Foundation
import SafeTensors

/// Writes `RUN/metrics.jsonl` and `RUN/metrics.csv` from epoch events (rank 0).
public final class MetricsLog: TrainingObserver {
    /// The files written.
    public let path: String, csvPath: String
    private let warn: (String) -> Void
    private var file: JSONLinesFile { JSONLinesFile(path: path) }
    /// The lines of metrics.jsonl, decoded.
    private var rows: [[String: Any]] = []

    /// A log at `RUN/metrics.jsonl`; `warn` hears of lines that could not be written.
    public init(runDirectory: String, warn: @escaping (String) -> Void) {
        path = runDirectory + "/metrics.jsonl"
        csvPath = runDirectory + "/metrics.csv"
        self.warn = warn
    }

    public func observe(_ event: TrainingEvent) {
        switch event {
        case .started(let start):
            // On resume, drop the lines of epochs the checkpoint had not
            // finished: they are written again.
            if let position = start.resumedAt {
                do {
                    try file.keepEpochs(through: position.epoch)
                } catch {
                    warn("\(error)")
                }
            }
            rows = file.lines().compactMap(Self.object)
            writeTable()
        case .epochEnded(let record):
            let text = line(record)
            do {
                try file.append(text)
            } catch {
                warn("\(error)")
            }
            if let row = Self.object(text.dropLast()) { rows.append(row) }
            writeTable()
        default:
            break
        }
    }

    /// `{"epoch": 3, "loss": 0.301, …}`; non-finite values are `null`.
    public func line(_ record: EpochRecord) -> String {
        metricsJSON(record.fields, integers: EpochRecord.integerFields, lists: record.rankFields) + "\n"
    }

    private static func object(_ line: Substring) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }

    /// metrics.csv from the lines of metrics.jsonl: one column per figure,
    /// per-rank lists spread over `rank{r}_step_ms`, `rank{r}_wait_ms`
    /// columns; a figure an epoch lacks is an empty cell.
    private func writeTable() {
        guard !rows.isEmpty else { return }
        do {
            // Derived from metrics.jsonl each epoch: atomic, not durable.
            try userFacing { try AtomicFile.write(Array(MetricsLog.table(rows).utf8), to: csvPath, durable: false) }
        } catch {
            warn("\(error)")
        }
    }

    /// The figures in the order an epoch line gives them.
    static let columnOrder = ["epoch", "global_step", "loss", "accuracy", "mse", "mae", "val_loss", "val_accuracy", "val_mse",
                              "val_mae", "learning_rate", "seconds", "samples_per_second", "world_size", "allreduce_ms",
                              "allreduce_call_ms_per_step", "skipped_steps"]

    /// CSV text of metrics.jsonl's objects.
    static func table(_ rows: [[String: Any]]) -> String {
        var flat: [[String: String]] = []
        var present = Set<String>()
        for row in rows {
            var cells: [String: String] = [:]
            for (key, value) in row {
                if let list = value as? [Any] {
                    let suffix = key.hasPrefix("rank_") ? String(key.dropFirst("rank_".count)) : key
                    for (r, item) in list.enumerated() { cells["rank\(r)_" + suffix] = cell(item) }
                } else {
                    cells[key] = cell(value)
                }
            }
            present.formUnion(cells.keys)
            flat.append(cells)
        }
        let known = columnOrder.filter(present.contains)
        let rankColumns = present.subtracting(known).sorted { a, b in
            let (ra, rb) = (rankNumber(a), rankNumber(b))
            return ra != rb ? ra < rb : a < b
        }
        let columns = known + rankColumns
        var text = columns.joined(separator: ",") + "\n"
        for cells in flat { text += columns.map { cells[$0] ?? "" }.joined(separator: ",") + "\n" }
        return text
    }

    private static func cell(_ value: Any) -> String {
        if value is NSNull { return "" }
        if let number = value as? NSNumber { return number.stringValue }
        return "\(value)"
    }

    /// The rank of a `rank{r}_…` column (other columns sort after, by name).
    private static func rankNumber(_ column: String) -> Int {
        guard column.hasPrefix("rank"), let end = column.firstIndex(of: "_"),
              let r = Int(column[column.index(column.startIndex, offsetBy: 4)..<end]) else { return Int.max }
        return r
    }
}
