// The command line: parse, validate, hand the values to the library's types.
// No training logic lives here.

import ArgumentParser
import Foundation
import NNCore
import NNData
import NNDistributed
import NNTraining
#if canImport(Glibc)
import Glibc
#endif

struct NNTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nntrain",
        abstract: "Train neural networks on one process or many (mpirun -n N nntrain).",
        discussion: """
            With no arguments, trains the default preset (fashion-mnist). Presets: \(Presets.names.joined(separator: ", ")).
            Under mpirun every rank runs the same command; rank 0 prints and writes the run directory.
            """,
        version: NNTrainVersion.string,
        subcommands: [Train.self, Evaluate.self, Predict.self, Inspect.self, ReportCommand.self, Selftest.self, Bench.self],
        defaultSubcommand: Train.self)
}

extension NonFiniteAction: ExpressibleByArgument {}
extension GradientCompressionSetting: ExpressibleByArgument {}
extension OverlapRequest: ExpressibleByArgument {}
extension ShardingRequest: ExpressibleByArgument {}
extension StandByRequest: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model from a config file or a preset.")

    @Option(name: .long, help: "A YAML run configuration.")
    var config: String?

    @Option(name: .long, help: "A built-in configuration: \(Presets.names.joined(separator: ", ")).")
    var preset: String?

    @Option(name: .long, parsing: .unconditional, help: "Override training.epochs.")
    var epochs: Int?

    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Override training.batch_size (the global batch).")
    var batchSize: Int?

    @Option(name: .customLong("learning-rate"), parsing: .unconditional, help: "Override optimizer.learning_rate.")
    var learningRate: Float?

    @Option(name: .long, parsing: .unconditional, help: "Override training.seed.")
    var seed: UInt64?

    @Flag(name: .customLong("early-stopping"), help: "Stop when val_loss stops improving (training.early_stopping; Keras' defaults).")
    var earlyStopping = false

    @Option(name: .long, help: "The figure early stopping watches, e.g. val_loss, val_accuracy (turns it on).")
    var monitor: String?

    @Option(name: .long, parsing: .unconditional, help: "Epochs without improvement before early stopping (turns it on).")
    var patience: Int?

    @Option(name: .customLong("min-delta"), parsing: .unconditional, help: "Smallest change that counts as an improvement (turns early stopping on).")
    var minDelta: Double?

    @Flag(name: .customLong("restore-best-weights"), help: "At an early stop, keep the best epoch's weights (turns early stopping on).")
    var restoreBestWeights = false

    @Option(name: .customLong("on-nonfinite"), help: "When a step's gradients or update hold NaN or inf: stop (the default) or skip the step (training.on_nonfinite).")
    var onNonFinite: NonFiniteAction?

    @Option(name: .customLong("max-consecutive-skips"), parsing: .unconditional, help: "With --on-nonfinite skip: stop after this many skipped steps in a row (default 10).")
    var maxConsecutiveSkips: Int?

    @Option(name: .customLong("gradient-compression"), help: "Sum the gradients over the ranks as bf16 or fp16, keeping each rank's rounding error for the next step (training.gradient_compression; default none: Float32).")
    var gradientCompression: GradientCompressionSetting?

    @Option(name: .customLong("collective-timeout"), parsing: .unconditional, help: "Seconds a rank may wait in a collective (or for a lost rank) before the job is stopped; 0 waits forever.")
    var collectiveTimeout: Double = 60

    @Option(name: .customLong("allreduce-algorithm"),
            help: ArgumentHelp("How the gradients are summed under MPI: auto (time Open MPI's allreduce algorithms, and the sum through shared memory when every rank is on one host, at start-up; use the fastest), default (Open MPI's decision rules), or one algorithm: 1-6 or \(AllreduceTuning.flagNames.joined(separator: ", ")).",
                               valueName: "algorithm"))
    var allreduceAlgorithm = "auto"

    @Option(name: .customLong("overlap-allreduce"),
            help: "Sum each layer's gradients while backward computes the layers below: auto (time both ways at start-up, keep the faster), on, or off (one allreduce after backward).")
    var overlapAllreduce: OverlapRequest = .auto

    @Option(name: .customLong("shard-optimizer"),
            help: "Split the optimizer update over the ranks (each sums and updates its part of the parameters, then the parts are gathered): auto (wherever it applies: CPU ranks without gradient compression or on_nonfinite: skip), on, or off.")
    var shardOptimizer: ShardingRequest = .auto

    @Option(name: .customLong("stand-by"),
            help: "On a host with more ranks than cores: auto (one rank per core trains, and the others stand by, asleep, until the run ends; the model is the one as many ranks as train would make) or off (every rank trains, sharing the cores).")
    var standBy: StandByRequest = .auto

    /// What `--shard-optimizer` asks for once `--overlap-allreduce` is
    /// heard: overlap asked for by name keeps the whole allreduce, unless
    /// sharding is asked for by name too (which validation refuses).
    var shardingRequest: ShardingRequest {
        shardOptimizer == .auto && overlapAllreduce == .on ? .off : shardOptimizer
    }

    /// What `--allreduce-algorithm` asks for (validated).
    var allreduce: AllreduceRequest { AllreduceRequest(flag: allreduceAlgorithm) ?? .measure }

    @Option(name: .customLong("run-dir"), help: "Where metrics, checkpoints and the model go (default: runs/NAME, numbered if taken).")
    var runDir: String?

    @Option(name: .customLong("data-cache"),
            help: ArgumentHelp("Where the ranks on a host keep one shared, memory-mapped copy of the prepared data (IDX or CSV files of 1 MiB or more), reused by later runs (default: $XDG_CACHE_HOME/nntrain or ~/.cache/nntrain); none loads the data into every rank.",
                               valueName: "dir|none"))
    var dataCache: String?

    /// `--resume` takes an optional value, which the parser cannot say: a bare
    /// `--resume` reaches it as `--resume-latest` (see `CommandLineArguments`).
    @Option(name: .customLong("resume"),
            help: ArgumentHelp("Continue a stopped run: alone, from the latest valid checkpoint of the run (--run-dir, or the newest runs/NAME); with a file, from that checkpoint.",
                               valueName: "checkpoint"))
    var resumeFrom: String?

    @Flag(name: .customLong("resume-latest"), help: .hidden)
    var resumeLatest = false

    var resume: ResumeChoice? { resumeFrom.map(ResumeChoice.file) ?? (resumeLatest ? .latest : nil) }

    @Option(name: .customLong("checkpoint-every"), parsing: .unconditional, help: "Also write a checkpoint every N steps (default: at the end of every epoch only).")
    var checkpointEvery: Int = 0

    @Option(name: .customLong("checkpoint-minutes"), parsing: .unconditional, help: "Also write a checkpoint when this many minutes have passed since the last one (0: never by time).")
    var checkpointMinutes: Double = 10

    @Option(name: .customLong("keep-checkpoints"), parsing: .unconditional, help: "How many checkpoints to keep.")
    var keepCheckpoints: Int = 3

    @Flag(name: .customLong("no-tensorboard"), help: "Write no TensorBoard event files (RUN/tensorboard/).")
    var noTensorBoard = false

    /// Whether rank 0 writes RUN/tensorboard/.
    var tensorBoard: Bool { !noTensorBoard }

    @Option(name: .customLong("init-from"), help: "Start from the weights in this safetensors file (layers.{i}.weight/bias).")
    var initFrom: String?

    @Option(name: .long, help: "auto (a GPU when one is usable), cpu or cuda.")
    var device: DeviceChoice = .auto

    @Flag(name: .customLong("allow-tf32"), help: "Let cuBLAS use TF32 tensor cores for GEMMs.")
    var allowTF32 = false

    @Flag(name: .customLong("no-report"), help: "Do not write RUN/report.html after every epoch.")
    var noReport = false

    func validate() throws {
        if config != nil && preset != nil { throw ValidationError("give either --config or --preset, not both") }
        if let epochs, epochs <= 0 { throw ValidationError("--epochs: must be a positive integer (got \(epochs))") }
        if let batchSize, batchSize <= 0 { throw ValidationError("--batch-size: must be a positive integer (got \(batchSize))") }
        if let learningRate, !(learningRate > 0) || !learningRate.isFinite {
            throw ValidationError("--learning-rate: must be a positive number (got \(learningRate))")
        }
        if checkpointEvery < 0 { throw ValidationError("--checkpoint-every: must be 0 or more (got \(checkpointEvery))") }
        if !(checkpointMinutes >= 0) || !checkpointMinutes.isFinite {
            throw ValidationError("--checkpoint-minutes: must be 0 (never by time) or a positive number (got \(checkpointMinutes))")
        }
        if keepCheckpoints < 1 { throw ValidationError("--keep-checkpoints: must be at least 1 (got \(keepCheckpoints))") }
        if resumeLatest && resumeFrom != nil { throw ValidationError("give --resume once") }
        if shardOptimizer == .on && overlapAllreduce == .on {
            throw ValidationError("--shard-optimizer on and --overlap-allreduce on: a sharded update sums with a reduce-scatter after backward, so it cannot overlap; choose one")
        }
        if let patience, patience < 0 { throw ValidationError("--patience: must be 0 or more (got \(patience))") }
        if let minDelta, !(minDelta >= 0) || !minDelta.isFinite {
            throw ValidationError("--min-delta: must be a non-negative number (got \(minDelta))")
        }
        if let maxConsecutiveSkips, maxConsecutiveSkips < 1 {
            throw ValidationError("--max-consecutive-skips: must be at least 1 (got \(maxConsecutiveSkips))")
        }
        if !(collectiveTimeout >= 0) || !collectiveTimeout.isFinite {
            throw ValidationError("--collective-timeout: must be 0 (no limit) or a positive number of seconds (got \(collectiveTimeout))")
        }
        if AllreduceRequest(flag: allreduceAlgorithm) == nil {
            throw ValidationError(AllreduceRequest.unknown(allreduceAlgorithm))
        }
        if resume != nil && initFrom != nil {
            throw ValidationError("--init-from starts a new run; it cannot be combined with --resume")
        }
    }

    /// The flags that override the configuration.
    var overrides: ConfigOverrides {
        var overrides = ConfigOverrides(epochs: epochs, batchSize: batchSize, learningRate: learningRate, seed: seed)
        overrides.earlyStopping = earlyStopping
        overrides.monitor = monitor
        overrides.patience = patience
        overrides.minDelta = minDelta
        overrides.restoreBestWeights = restoreBestWeights ? true : nil
        overrides.onNonFinite = onNonFinite
        overrides.gradientCompression = gradientCompression
        overrides.maxConsecutiveSkips = maxConsecutiveSkips
        return overrides
    }

    /// When the loop checkpoints.
    var schedule: TrainingSchedule { TrainingSchedule(checkpointEvery: checkpointEvery, checkpointSeconds: checkpointMinutes * 60) }

    func run() throws {
        let status = Launch.train(self)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Loss and metrics of a saved model on a test set.")

    @Option(name: .long, help: "A model.safetensors written by nntrain train.")
    var model: String

    @Option(name: .long, help: "Take the test set from this config (default: the config saved in the model).")
    var config: String?

    @Option(name: .long, help: "Take the test set from this preset.")
    var preset: String?

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if config != nil && preset != nil { throw ValidationError("give either --config or --preset, not both") }
    }

    func run() throws {
        let loaded = try Launch.flagged("--model") { try LoadedModel(path: model, accelerator: Inference.accelerator()) }
        var data = loaded.snapshot.config.data
        if let config { data = try ConfigReader.read(path: config).data }
        if let preset { data = try Launch.flagged("--preset") { try Presets.config(preset) }.data }
        guard let source = data.test else {
            throw UserError("\(config ?? preset.map { "preset \($0)" } ?? model): the configuration has no data.test; add a test set, or pass --config with one")
        }
        let metrics = try loaded.evaluate(on: source)
        output(json ? Inference.json(metrics) + "\n" : Inference.line(metrics) + "\n")
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Predictions of a saved model for the rows of a CSV file.")

    @Option(name: .long, help: "A model.safetensors written by nntrain train.")
    var model: String

    @Option(name: .long, help: "A CSV file with a header and the model's feature columns (matched by name).")
    var input: String

    @Option(name: .long, help: "Write the predictions here (default: standard output).")
    var output: String?

    func run() throws {
        let loaded = try Launch.flagged("--model") { try LoadedModel(path: model, accelerator: Inference.accelerator()) }
        let text = Inference.csv(loaded.predict(try Inference.features(of: input, for: loaded)))
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8)) else {
                throw UserError("--output: \(output): cannot write the file; check that its directory exists")
            }
        } else {
            NNTrainApp.output(text)
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write RUN_DIR/report.html: curves, learning rate, histograms, confusion matrix, decision regions, throughput.",
        discussion: "One self-contained page (no scripts, nothing fetched); while the run is in progress it reloads itself.")

    @Argument(help: ArgumentHelp("A run directory written by nntrain train.", valueName: "RUN_DIR"))
    var runDirectory: String

    func run() throws {
        let writer = ReportWriter(directory: runDirectory, accelerator: Inference.accelerator)
        let bytes = try writer.write(live: nil)
        output("\(writer.path) (\(bytes / 1024) KiB)\n")
    }
}

extension DeviceChoice: ExpressibleByArgument {}

struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an accelerator against the CPU backend, op by op, then train one epoch on it.")

    @Option(name: .long, help: "auto, cpu or cuda.")
    var device: DeviceChoice = .auto

    @Flag(name: .customLong("allow-tf32"), help: "Let cuBLAS use TF32 tensor cores for GEMMs.")
    var allowTF32 = false

    @Option(name: .long, help: "Seed of the random inputs.")
    var seed: UInt64 = 1

    @Flag(name: .customLong("no-train"), help: "Only the conformance checks.")
    var noTrain = false

    func run() throws {
        let status = try SelfCheck.run(device: device, allowTF32: allowTF32, seed: seed, trainEpoch: !noTrain)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measurements for the benchmark scripts (scripts/bench-cpu, scripts/bench-distributed).",
        subcommands: [GEMMBound.self, Allreduce.self, CheckpointIO.self, ReportRefresh.self, UpdateCheck.self])

    struct UpdateCheck: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update",
            abstract: "Time of a preset's optimizer update on the CPU with and without its non-finite check, beside the step's matrix products.")

        @Option(name: .long, help: "Preset whose model and optimizer to use.")
        var preset: String = Presets.names[0]

        @Option(name: .customLong("input-size"), help: "Features per sample.")
        var inputSize: Int = 784

        @Option(name: .long, help: "Rounds of each, alternating.")
        var rounds: Int = 15

        func run() throws {
            let config = try Launch.flagged("--preset") { try Presets.config(preset) }
            let r = Benchmarks.updateCheck(config: config, inputSize: inputSize, rounds: rounds)
            let share = (r.checkedMicroseconds - r.plainMicroseconds) / (r.stepGEMMMilliseconds * 1000)
            output(String(format: "{\"parameters\": %d, \"update_us\": %.2f, \"checked_update_us\": %.2f, \"check_us\": %.2f, \"step_gemm_ms\": %.4f, \"check_share_of_gemm_step\": %.5f}\n",
                          r.parameters, r.plainMicroseconds, r.checkedMicroseconds, r.checkedMicroseconds - r.plainMicroseconds,
                          r.stepGEMMMilliseconds, share))
        }
    }

    struct ReportRefresh: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report",
            abstract: "Time of writing a run's report.html as training refreshes it: the first write, then the mean of the next ones.")

        @Argument(help: "A run directory.")
        var runDirectory: String

        @Option(name: .long, help: "Writes after the first.")
        var repetitions: Int = 20

        func run() throws {
            let r = try Benchmarks.reportRefresh(runDirectory: runDirectory, repetitions: repetitions)
            output(String(format: "{\"first_ms\": %.2f, \"refresh_ms\": %.3f, \"bytes\": %d}\n", r.firstMilliseconds, r.refreshMilliseconds, r.bytes))
        }
    }

    struct CheckpointIO: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint",
            abstract: "Write and read time of a checkpoint of a preset's model with its optimizer state.")

        @Option(name: .long, help: "Preset whose model to use.")
        var preset: String = Presets.names[0]

        @Option(name: .customLong("input-size"), help: "Features per sample.")
        var inputSize: Int = 784

        @Option(name: .long, help: "Directory to write in.")
        var directory: String = "."

        @Option(name: .long, help: "Repetitions.")
        var repetitions: Int = 20

        func run() throws {
            let config = try Launch.flagged("--preset") { try Presets.config(preset) }
            let r = try Benchmarks.checkpoint(config: config, inputSize: inputSize, directory: directory, repetitions: repetitions)
            output(String(format: "{\"write_ms\": %.2f, \"read_ms\": %.2f, \"file_bytes\": %d, \"raw_bytes\": %d, \"overhead_bytes\": %d}\n",
                          r.writeMilliseconds, r.readMilliseconds, r.fileBytes, r.rawBytes, r.fileBytes - r.rawBytes))
        }
    }

    struct Allreduce: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bare MPI_Allreduce time for a buffer (run under mpirun), the point-to-point bandwidth, and on one host the time to read another rank's freshly written buffer.")

        @Option(name: .long, help: "Floats to reduce (default: the default preset's parameter count).")
        var count: Int = 235_146

        @Option(name: .long, help: "Allreduce calls to time.")
        var iterations: Int = 2000

        @Flag(name: .customLong("all-algorithms"),
              help: "Time each of Open MPI's allreduce algorithms in this job, and the sum through shared memory when every rank is on one host, as train's start-up measurement does (--iterations is then set by the buffer's size).")
        var allAlgorithms = false

        func run() throws {
            let result = allAlgorithms ? Benchmarks.allreduceAlgorithms(count: count)
                : Benchmarks.allreduce(count: count, iterations: iterations)
            if let result { output(result + "\n") }
        }
    }

    struct GEMMBound: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gemm",
            abstract: "Samples/s that a training step's matrix products alone allow (OpenBLAS).")

        @Option(name: .long, help: "Preset whose dense layers to use.")
        var preset: String = Presets.names[0]

        @Option(name: .customLong("input-size"), help: "Features per sample.")
        var inputSize: Int = 784

        @Option(name: .customLong("batch-size"), help: "Batch (default: the preset's).")
        var batchSize: Int?

        @Option(name: .long, help: "OpenBLAS threads.")
        var threads: Int = 1

        @Option(name: .long, help: "Seconds to measure.")
        var seconds: Double = 3

        @Option(name: .long, help: "cpu or cuda.")
        var device: DeviceChoice = .cpu

        @Flag(name: .customLong("allow-tf32"), help: "Let cuBLAS use TF32 tensor cores.")
        var allowTF32 = false

        func run() throws {
            let config = try Launch.flagged("--preset") { try Presets.config(preset) }
            let batch = batchSize ?? config.training.batchSize
            let widths = Benchmarks.widths(of: config, inputSize: inputSize)
            let accelerator = try Devices.open(device, localRank: 0, cpuThreads: threads, allowTF32: allowTF32).accelerator
            let perStep = Benchmarks.stepGEMMs(widths: widths, batch: batch, accelerator: accelerator, seconds: seconds).perIteration
            output(String(format: "{\"widths\": %@, \"batch\": %d, \"threads\": %d, \"step_ms\": %.4f, \"samples_per_second\": %.0f}\n",
                          "[" + widths.map(String.init).joined(separator: ", ") + "]", batch, threads, perStep * 1000,
                          Double(batch) / perStep))
        }
    }
}

/// Writes to standard output and flushes, so output keeps its order with
/// standard error in a file.
func output(_ text: String) {
    Console.write(text, to: stdout)
}

// MARK: - Entry

/// Runs the command line and exits: 0 on success, 2 with one line on
/// standard error for anything the user can fix, the command's own status otherwise.
public func runCommandLine(_ arguments: [String]) -> Never {
    Environment.applyCUDALibraryPaths()
    Environment.installTestHooks()
    do {
        let normalized = try CommandLineArguments.normalized(arguments)
        var command = try NNTrain.parseAsRoot(normalized)
        try command.run()
        exit(0)
    } catch let error as UserError {
        fail(error.message)
    } catch let code as ExitCode {
        exit(code.rawValue)
    } catch {
        let code = NNTrain.exitCode(for: error)
        if code == .success {
            output(NNTrain.fullMessage(for: error) + "\n")
            exit(0)
        }
        let message = NNTrain.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
        fail(message + " (see nntrain --help)")
    }
}

/// Every user-caused problem ends as one line on standard error and exit status 2.
func fail(_ message: String) -> Never {
    Console.error(message)
    exit(2)
}
