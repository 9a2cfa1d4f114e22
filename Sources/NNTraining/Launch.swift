// Wiring a run together: communicator, accelerator, configuration agreed by
// every rank, data, trainer. The command line calls these with parsed
// arguments and holds no logic of its own.

import Foundation
import NNCore
import NNData
import NNDistributed
#if canImport(Glibc)
import Glibc
#endif

/// What `nntrain train` was asked to do.
public struct TrainRequest: Sendable {
    public var configPath: String?
    public var preset: String?
    public var epochs: Int?
    public var batchSize: Int?
    public var learningRate: Float?
    public var seed: UInt64?
    public var runDirectory: String?
    /// `--resume` alone (latest valid checkpoint) or `--resume PATH`.
    public var resume: Resume?
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    public var initFrom: String?
    public var device: DeviceChoice = .auto
    /// Let cuBLAS use TF32 tensor cores for float GEMMs (faster, ~10-bit mantissa products).
    public var allowTF32 = false

    /// Where to resume from: the latest valid checkpoint, or a given file.
    public enum Resume: Sendable, Equatable { case latest, file(String) }

    /// A request with every setting at its default.
    public init() {
        checkpointEvery = 0
        keepCheckpoints = 3
    }
}

/// Entry points behind the command line.
public enum Launch {
    // MARK: - train

    /// Trains as one rank of a job (a world of one without a launcher).
    /// Returns the process exit status.
    public static func train(_ request: TrainRequest) -> Int32 {
        let communicator: any Communicator = MPICommunicator.launchedByMPI ? MPICommunicator() : LocalCommunicator()
        defer { communicator.finalize() }
        let console = Console(enabled: communicator.isCoordinator, underLauncher: MPICommunicator.launchedByMPI)
        StopSignal.install()
        do {
            var threads = blasThreads(localRanks: communicator.localSize)
            let (accelerator, deviceNote) = try collectively(communicator, console) {
                try Devices.open(request.device, localRank: communicator.localRank, cpuThreads: threads.count,
                                 allowTF32: request.allowTF32)
            }
            if !deviceNote.isEmpty { threads.reason += "; " + deviceNote }

            // Rank 0 resolves the configuration (from a checkpoint when
            // resuming); every rank then checks it runs the same one.
            var resumeSnapshot: ModelSnapshot?
            var runDirectory = ""
            if let resume = request.resume {
                var bytes: [UInt8] = []
                var path = ""
                try collectively(communicator, console) {
                    guard communicator.isCoordinator else { return }
                    (path, runDirectory) = try locateCheckpoint(resume, request: request, console: console)
                    bytes = try readWhole(path)
                }
                bytes = communicator.broadcast(bytes: bytes)
                path = String(decoding: communicator.broadcast(bytes: Array(path.utf8)), as: UTF8.self)
                resumeSnapshot = try collectively(communicator, console) {
                    let snapshot = try ModelFile.decode(SafeTensors.decode(bytes, path: path), path: path)
                    guard let position = snapshot.position else {
                        throw UserError("\(path): a final model, not a checkpoint; resume from RUN/checkpoints/, or use --init-from to start from its weights")
                    }
                    console.line("resuming from \(path) (epoch \(position.epoch + 1), step \(position.stepInEpoch), global step \(position.globalStep))")
                    return snapshot
                }
            }
            let config: RunConfig = try collectively(communicator, console) {
                if let snapshot = resumeSnapshot {
                    return try applyOverrides(snapshot.config, request, console: console, announce: true)
                }
                let base = try request.configPath.map(ConfigReader.read) ?? Presets.config(request.preset ?? Presets.names[0])
                return try applyOverrides(base, request, console: console, announce: false)
            }
            try agree(on: config, communicator, console)

            if communicator.isCoordinator && request.resume == nil {
                runDirectory = request.runDirectory ?? freshRunDirectory(name: runName(request))
            }
            let objective = try config.objective()
            let data = try collectively(communicator, console) {
                try DataLoading.prepare(config, objective: objective, includeTest: true,
                                        scaler: resumeSnapshot?.scaler, classNames: resumeSnapshot?.classNames)
            }
            if let snapshot = resumeSnapshot, snapshot.inputSize != data.featureCount {
                throw UserError("\(config.data.train.summary): the data has \(data.featureCount) features but the checkpoint's model takes \(snapshot.inputSize)")
            }
            var initialParameters: [Float]?
            if let path = request.initFrom, resumeSnapshot == nil {
                try collectively(communicator, console) {
                    guard communicator.isCoordinator else { return }
                    let layout = Sequential.layout(inputSize: data.featureCount, layers: config.layerSpecs)
                    initialParameters = try ModelFile.gather(SafeTensors.read(path: path), prefix: "", layout: layout, path: path)
                    console.line("initial weights from \(path)")
                }
            }
            let options = TrainOptions(runDirectory: runDirectory, resumeFrom: resumeSnapshot, initialParameters: initialParameters,
                                       checkpointEvery: request.checkpointEvery, keepCheckpoints: request.keepCheckpoints)
            let trainer = try collectively(communicator, console) {
                try Trainer(config: config, data: data, options: options, communicator: communicator,
                            accelerator: accelerator, console: console)
            }
            describe(config: config, data: data, trainer: trainer, threads: threads, runDirectory: runDirectory, console: console)
            _ = try trainer.run()
            return 0
        } catch let error as UserError {
            // Errors after start-up are collective decisions (every rank saw
            // the same values), so every rank stops here; rank 0 says why.
            if communicator.isCoordinator { printError(error.message) }
            return 2
        } catch let failure as CollectiveFailure {
            if let message = failure.message { printError(message) }
            return 2
        } catch {
            printError("\(error)")
            return 1
        }
    }

    // MARK: - Start-up helpers

    /// Runs `body` on every rank, then lets every rank know whether any
    /// failed, so none is left waiting in a collective. The failing rank's
    /// message is printed by that rank (prefixed with its number when the job
    /// has several).
    static func collectively<T>(_ communicator: any Communicator, _ console: Console, _ body: () throws -> T) throws -> T {
        var result: Result<T, UserError>
        do {
            result = .success(try body())
        } catch let error as UserError {
            result = .failure(error)
        }
        guard communicator.size > 1 else { return try result.get() }
        let failed = communicator.allGather(result.isSuccess ? 0 : 1)
        if case .failure(let error) = result {
            // The same failure everywhere (same data, same config): rank 0 says it once.
            if failed.allSatisfy({ $0 == 1 }) {
                throw CollectiveFailure(message: communicator.isCoordinator ? error.message : nil)
            }
            throw CollectiveFailure(message: "rank \(communicator.rank): " + error.message)
        }
        if let first = failed.firstIndex(of: 1) {
            throw CollectiveFailure(message: communicator.isCoordinator && first != 0
                                    ? "rank \(first) failed during start-up (see its message); stopping every rank" : nil)
        }
        return try result.get()
    }

    /// Every rank compares the fingerprint of its resolved configuration with
    /// rank 0's; a mismatch stops all of them with a message naming the ranks.
    static func agree(on config: RunConfig, _ communicator: any Communicator, _ console: Console) throws {
        guard communicator.size > 1 else { return }
        let prints = communicator.allGather(config.fingerprint)
        let differing = prints.indices.filter { prints[$0] != prints[0] }
        guard !differing.isEmpty else { return }
        let ranks = differing.map(String.init).joined(separator: ", ")
        let message = "configuration mismatch: rank\(differing.count == 1 ? "" : "s") \(ranks) resolved a different configuration than rank 0 (fingerprint \(String(prints[differing[0]], radix: 16)) vs \(String(prints[0], radix: 16))); every rank must get the same config file, preset and flags"
        throw CollectiveFailure(message: communicator.isCoordinator || differing.contains(communicator.rank)
                                ? "rank \(communicator.rank): " + message : nil)
    }

    static func applyOverrides(_ base: RunConfig, _ request: TrainRequest, console: Console, announce: Bool) throws -> RunConfig {
        var config = base
        var changed: [String] = []
        if let epochs = request.epochs {
            guard epochs > 0 else { throw UserError("--epochs: must be a positive integer (got \(epochs))") }
            if epochs != config.training.epochs { changed.append("epochs \(config.training.epochs) → \(epochs)") }
            config.training.epochs = epochs
        }
        if let batch = request.batchSize {
            guard batch > 0 else { throw UserError("--batch-size: must be a positive integer (got \(batch))") }
            if batch != config.training.batchSize { changed.append("batch_size \(config.training.batchSize) → \(batch)") }
            config.training.batchSize = batch
        }
        if let rate = request.learningRate {
            guard rate > 0, rate.isFinite else { throw UserError("--learning-rate: must be a positive number (got \(rate))") }
            if rate != config.optimizer.learningRate { changed.append("learning_rate \(config.optimizer.learningRate) → \(rate)") }
            config.optimizer.learningRate = rate
        }
        if let seed = request.seed {
            if seed != config.training.seed { changed.append("seed \(config.training.seed) → \(seed)") }
            config.training.seed = seed
        }
        if announce && !changed.isEmpty {
            console.line("overriding the checkpoint's configuration: " + changed.joined(separator: ", "))
        }
        return config
    }

    /// The checkpoint file and run directory for `--resume`.
    static func locateCheckpoint(_ resume: TrainRequest.Resume, request: TrainRequest, console: Console) throws -> (String, String) {
        switch resume {
        case .file(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                throw UserError("--resume: \(path): no such file; give a checkpoint from RUN/checkpoints/")
            }
            let checkpoints = URL(fileURLWithPath: path).deletingLastPathComponent()
            return (path, request.runDirectory ?? checkpoints.deletingLastPathComponent().path)
        case .latest:
            let run = try request.runDirectory ?? latestRunDirectory(name: runName(request))
            let (_, path) = try Checkpoints.latestValid(in: run, warn: console.warn)
            return (path, run)
        }
    }

    static func readWhole(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("\(path): cannot read the file; check that it exists and is readable")
        }
        return [UInt8](data)
    }

    /// `fashion-mnist` for a preset, the file's base name for a config.
    static func runName(_ request: TrainRequest) -> String {
        if let path = request.configPath {
            return URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        }
        return request.preset ?? Presets.names[0]
    }

    /// `runs/NAME`, or `runs/NAME-2`, … : a new run never overwrites an old one.
    static func freshRunDirectory(name: String) -> String {
        var candidate = "runs/\(name)"
        var n = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = "runs/\(name)-\(n)"
            n += 1
        }
        return candidate
    }

    /// The most recent `runs/NAME*` that holds checkpoints.
    static func latestRunDirectory(name: String) throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "runs")) ?? []
        let runs = names.filter { $0 == name || $0.hasPrefix(name + "-") }.map { "runs/" + $0 }
            .filter { !Checkpoints.list($0).isEmpty }
        let newest = runs.max { modified($0) < modified($1) }
        guard let newest else {
            throw UserError("--resume: no run of '\(name)' with checkpoints under runs/; pass --run-dir DIR of the run to resume")
        }
        return newest
    }

    private static func modified(_ path: String) -> Date {
        let latest = Checkpoints.directory(of: path) + "/latest"
        let attributes = try? FileManager.default.attributesOfItem(atPath: latest)
        return attributes?[.modificationDate] as? Date ?? .distantPast
    }

    /// BLAS threads per rank: max(1, cores / ranks on this host), unless
    /// OPENBLAS_NUM_THREADS says otherwise.
    static func blasThreads(localRanks: Int) -> (count: Int, reason: String) {
        if let text = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"], let n = Int(text), n > 0 {
            return (n, "OPENBLAS_NUM_THREADS=\(n)")
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let n = max(1, cores / max(1, localRanks))
        return (n, "\(cores) cores / \(localRanks) rank\(localRanks == 1 ? "" : "s") on this host")
    }

    static func describe(config: RunConfig, data: PreparedData, trainer: Trainer, threads: (count: Int, reason: String),
                         runDirectory: String, console: Console) {
        let model = trainer.model
        var shape = ["\(data.featureCount)"]
        for spec in config.layerSpecs {
            switch spec {
            case .dense(let units, let activation, _, _, _): shape.append("dense \(units) \(activation.name)")
            case .dropout(let rate): shape.append("dropout \(rate)")
            }
        }
        let sizes = "\(data.training.count) training" + (data.validation.map { ", \($0.count) validation" } ?? "")
            + (data.test.map { ", \($0.count) test" } ?? "")
        console.line("data: \(config.data.train.summary): \(sizes) samples, \(data.featureCount) features")
        console.line("model: " + shape.joined(separator: " → ") + " (\(model.parameterCount) parameters), loss \(config.loss.rawValue)")
        let world = trainer.communicator.size
        console.line("optimizer: \(config.optimizer.name.rawValue), learning_rate \(config.optimizer.learningRate); batch \(config.training.batchSize)"
                     + (world > 1 ? " (\(config.training.batchSize / world) per rank)" : "") + ", \(config.training.epochs) epochs, seed \(config.training.seed)")
        console.line("compute: \(trainer.accelerator.name) per rank (\(threads.reason)); \(trainer.communicator.name)"
                     + (world > 1 ? "; gradients: \(trainer.reducer.name)" : ""))
        console.line("run directory: \(runDirectory)")
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data(("nntrain: error: " + message + "\n").utf8))
    }
}

/// A start-up failure that every rank learned about together.
struct CollectiveFailure: Error {
    /// What this rank prints (nil: another rank prints the reason).
    let message: String?
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
