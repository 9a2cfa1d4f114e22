// Rank 0's files: the run directory, the resolved config, checkpoints and
// the final model. Other ranks never touch the run directory.

import Foundation
import NNCore
import SafeTensors

/// Everything a run keeps on disk besides its metrics log. Exists on rank 0 only.
public final class RunStore {
    /// The run directory.
    public let directory: String
    /// Checkpoints kept (the newest).
    public let keep: Int

    /// A store writing under `directory`, keeping the newest `keep` checkpoints.
    public init(directory: String, keep: Int) {
        self.directory = directory
        self.keep = max(1, keep)
    }

    /// Seconds between two heartbeats.
    public static let heartbeatInterval = 5.0
    private var lastBeat: UInt64 = 0

    /// `RUN/heartbeat.json`.
    public var heartbeatPath: String { directory + "/heartbeat.json" }

    /// Rewrites `RUN/heartbeat.json` with the step rank 0 has reached and the
    /// time, at most every `heartbeatInterval` seconds: a supervisor outside
    /// the job tells a slow job (the step moves) from a stuck one (it does not).
    public func heartbeat(epoch: Int, step: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard lastBeat == 0 || Double(now - lastBeat) / 1e9 >= Self.heartbeatInterval else { return }
        lastBeat = now
        let time = Date()
        let text = "{\"epoch\": \(epoch), \"global_step\": \(step), \"time\": \"\(ISO8601DateFormatter().string(from: time))\", "
            + "\"unix_time\": \(String(format: "%.3f", time.timeIntervalSince1970)), \"interval_seconds\": \(Int(Self.heartbeatInterval)), "
            + "\"pid\": \(getpid())}\n"
        // A missed beat is only a late one: no error stops training for it.
        try? AtomicFile.write(Array(text.utf8), to: heartbeatPath, durable: false)
    }

    /// `RUN/checkpoints`.
    public var checkpointDirectory: String { Checkpoints.directory(of: directory) }

    /// Creates the run directory and removes temporary files that a process
    /// killed mid-write left behind.
    public func prepare() {
        try? FileManager.default.createDirectory(atPath: checkpointDirectory, withIntermediateDirectories: true)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: checkpointDirectory)) ?? [] where name.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: checkpointDirectory + "/" + name)
        }
    }

    /// Keeps the resolved configuration beside the results, for people to read.
    public func saveConfig(_ config: RunConfig) {
        try? AtomicFile.write(Array((config.canonicalJSON + "\n").utf8), to: directory + "/config.json")
    }

    /// Writes `checkpoints/step-NNNNNNNN.safetensors`, points `latest` at it,
    /// removes all but the newest `keep`, and returns its path.
    public func saveCheckpoint(_ snapshot: ModelSnapshot) throws -> String {
        let step = snapshot.position?.globalStep ?? 0
        let name = Checkpoints.fileName(step: step)
        let path = checkpointDirectory + "/" + name
        try ModelFile.write(snapshot, to: path)
        try userFacing { try AtomicFile.write(Array((name + "\n").utf8), to: checkpointDirectory + "/latest") }
        for old in Checkpoints.list(directory).dropFirst(keep) {
            try? FileManager.default.removeItem(atPath: old)
        }
        return path
    }

    /// `RUN/best.safetensors`: the best epoch's model under early stopping.
    public var bestModelPath: String { directory + "/best.safetensors" }

    /// Writes the best epoch's model (a final-model file) and returns its path.
    @discardableResult
    public func saveBest(_ snapshot: ModelSnapshot) throws -> String {
        try ModelFile.write(snapshot, to: bestModelPath)
        return bestModelPath
    }

    /// Writes the final model as `model.safetensors` and returns its path.
    public func saveModel(_ snapshot: ModelSnapshot) throws -> String {
        let path = directory + "/model.safetensors"
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

extension UserError {
    /// A file error as the user sees it: the same line.
    public init(_ error: FileError) { self.init(error.message) }
}

/// Runs `body`, turning the file layer's errors into user errors.
func userFacing<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FileError {
        throw UserError(error)
    }
}
