// Rank 0's files: the run directory, metrics.jsonl, checkpoints and the
// final model. Other ranks never touch the run directory.

import Foundation
import NNCore
import NNDistributed
#if canImport(Glibc)
import Glibc
#endif

/// Writes everything a run leaves on disk. Exists on rank 0 only.
final class Coordinator {
    let runDirectory: String
    let keep: Int
    let console: Console

    init(runDirectory: String, keep: Int, console: Console) {
        self.runDirectory = runDirectory
        self.keep = max(1, keep)
        self.console = console
    }

    var metricsPath: String { runDirectory + "/metrics.jsonl" }
    var checkpointDirectory: String { Checkpoints.directory(of: runDirectory) }

    /// Creates the run directory; on resume, drops metrics lines of epochs the
    /// checkpoint had not finished (they will be written again).
    func prepareRun(resumedAt position: TrainingPosition?) {
        try? FileManager.default.createDirectory(atPath: checkpointDirectory, withIntermediateDirectories: true)
        // A process killed mid-write leaves its temporary file behind.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: checkpointDirectory)) ?? [] where name.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: checkpointDirectory + "/" + name)
        }
        guard let position, let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let epoch = object["epoch"] as? Int else { return false }
            return epoch <= position.epoch
        }
        let joined = kept.map { $0 + "\n" }.joined()
        try? AtomicFile.write(Array(joined.utf8), to: metricsPath)
    }

    /// Keeps the resolved configuration beside the results, for people to read.
    func saveConfig(_ config: RunConfig) {
        try? AtomicFile.write(Array((config.canonicalJSON + "\n").utf8), to: runDirectory + "/config.json")
    }

    /// Appends one JSON line per epoch.
    func appendMetrics(_ record: EpochRecord) {
        var fields: [(String, String)] = [("epoch", String(record.epoch))]
        for (name, value) in record.training.named() { fields.append((name, number(value))) }
        for (name, value) in record.validation?.named(prefix: "val_") ?? [] { fields.append((name, number(value))) }
        fields.append(("learning_rate", number(Double(record.learningRate))))
        fields.append(("seconds", number(record.seconds)))
        fields.append(("samples_per_second", number(record.samplesPerSecond)))
        if let ms = record.allreduceMilliseconds { fields.append(("allreduce_ms", number(ms))) }
        if let ms = record.allreduceWaitMilliseconds { fields.append(("allreduce_call_ms_per_step", number(ms))) }
        let line = "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}\n"
        guard let handle = FileHandle(forWritingAtPath: metricsPath) ?? {
            _ = FileManager.default.createFile(atPath: metricsPath, contents: nil)
            return FileHandle(forWritingAtPath: metricsPath)
        }() else {
            console.warn("\(metricsPath): cannot write metrics")
            return
        }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.synchronize()
        try? handle.close()
    }

    private func number(_ value: Double) -> String {
        value.isFinite ? String(format: "%.6g", value) : "null"
    }

    /// Writes `checkpoints/step-NNNNNNNN.safetensors`, points `latest` at it,
    /// and removes all but the newest `keep`.
    func saveCheckpoint(_ snapshot: ModelSnapshot) throws {
        let step = snapshot.position?.globalStep ?? 0
        let name = Checkpoints.fileName(step: step)
        try ModelFile.write(snapshot, to: checkpointDirectory + "/" + name)
        try AtomicFile.write(Array((name + "\n").utf8), to: checkpointDirectory + "/latest")
        for old in Checkpoints.list(runDirectory).dropFirst(keep) {
            try? FileManager.default.removeItem(atPath: old)
        }
    }

    /// Writes the final model as `model.safetensors`.
    func saveModel(_ snapshot: ModelSnapshot) throws -> String {
        let path = runDirectory + "/model.safetensors"
        try ModelFile.write(snapshot, to: path)
        return path
    }
}

/// Finding checkpoints in a run directory.
public enum Checkpoints {
    /// `RUN/checkpoints`.
    public static func directory(of runDirectory: String) -> String { runDirectory + "/checkpoints" }

    /// Names sort by progress: `step-00004690.safetensors`.
    public static func fileName(step: Int) -> String { String(format: "step-%08d.safetensors", step) }

    /// Checkpoint paths, newest (most progress) first.
    public static func list(_ runDirectory: String) -> [String] {
        let dir = directory(of: runDirectory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }
            .sorted(by: >).map { dir + "/" + $0 }
    }

    /// The newest checkpoint that reads and verifies; damaged ones are skipped
    /// with a warning naming the reason.
    public static func latestValid(in runDirectory: String, warn: (String) -> Void) throws -> (ModelSnapshot, String) {
        let candidates = list(runDirectory)
        guard !candidates.isEmpty else {
            throw UserError("\(directory(of: runDirectory)): no checkpoints to resume from; start without --resume, or give --run-dir of an earlier run")
        }
        for path in candidates {
            do {
                let snapshot = try ModelFile.read(path: path)
                guard snapshot.position != nil else { throw UserError("\(path): not a checkpoint (no training position)") }
                return (snapshot, path)
            } catch let error as UserError {
                warn("skipping damaged checkpoint: \(error.message)")
            }
        }
        throw UserError("\(directory(of: runDirectory)): every checkpoint is damaged (see the warnings above); cannot resume")
    }
}

/// Stop requests from SIGTERM / SIGINT (Slurm's time limit, `kill`, Ctrl-C),
/// honoured at the next step boundary by every rank together.
public enum StopSignal {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    /// Installs the handlers. A second signal of the same kind ends the
    /// process at once, as usual.
    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { signal in
            StopSignal.requested = 1
            Glibc.signal(signal, SIG_DFL)
        }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
        signal(SIGUSR1, handler)
    }

    /// Steps between two checks in a job of several ranks: a check is a
    /// collective, so it runs every few steps rather than on every one.
    static let checkInterval = 8

    /// Whether any rank was asked to stop: all ranks learn it at the same
    /// step (every rank checks at the same global steps).
    static func agreed(_ communicator: any Communicator, step: Int) -> Bool {
        guard communicator.size > 1 else { return requested != 0 }
        guard step % checkInterval == 0 else { return false }
        var flag = [Double(requested)]
        flag.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return flag[0] > 0
    }
}
