// The data-parallel training loop. Every rank runs it; rank 0 is also the
// coordinator that prints, logs metrics and writes checkpoints.
//
// Per step: gather this rank's slice of the global batch → forward → loss →
// backward into the flat gradient buffer (pre-scaled by 1/global batch, so
// the allreduce sum *is* the batch mean) → one allreduce → weight penalties →
// finite check → optimizer step, identical on every rank.
//
// The finite check leaves its answer on the device (a `FiniteGuard`): the
// optimizer skips every step once it is set, and the host reads it every
// `finiteCheckInterval` steps and before anything is saved, so a GPU never
// waits for the host within those steps.

import Foundation
import NNCore
import NNData
import NNDistributed

/// How a training run starts and where it writes.
public struct TrainOptions: Sendable {
    /// Where metrics, checkpoints and the final model go (coordinator only).
    public var runDirectory: String
    /// A checkpoint to continue from (already chosen and read by the caller).
    public var resumeFrom: ModelSnapshot?
    /// Initial parameters in flat layout order (from `--init-from`), on rank 0.
    public var initialParameters: [Float]?
    /// Also checkpoint every this many steps (0: only at epoch ends and on signals).
    public var checkpointEvery: Int
    /// Checkpoints to keep.
    public var keepCheckpoints: Int

    /// Options for a run writing to `runDirectory`.
    public init(runDirectory: String, resumeFrom: ModelSnapshot? = nil, initialParameters: [Float]? = nil,
                checkpointEvery: Int = 0, keepCheckpoints: Int = 3) {
        self.runDirectory = runDirectory
        self.resumeFrom = resumeFrom
        self.initialParameters = initialParameters
        self.checkpointEvery = checkpointEvery
        self.keepCheckpoints = keepCheckpoints
    }
}

/// What a finished (or stopped) run reports.
public struct TrainingOutcome: Sendable {
    public var history: [EpochRecord]
    public var test: Metrics?
    /// Set when a signal stopped the run at a step boundary.
    public var stoppedEarly: Bool
    public var modelPath: String?
}

/// One epoch's figures, as written to metrics.jsonl.
public struct EpochRecord: Sendable {
    public var epoch: Int
    public var training: Metrics
    public var validation: Metrics?
    public var seconds: Double
    public var samplesPerSecond: Double
    public var learningRate: Float
    /// Mean time of the gradient allreduce itself, from steps that line up
    /// the ranks at a barrier first (jobs of several ranks).
    public var allreduceMilliseconds: Double?
    /// Mean time per step inside the allreduce call, waits for slower ranks included.
    public var allreduceWaitMilliseconds: Double?
}

/// Runs training on one rank of a job.
public final class Trainer {
    public let config: RunConfig
    public let communicator: any Communicator
    public let accelerator: any Accelerator
    public let console: Console
    public let objective: Objective
    public let data: PreparedData
    public let model: Sequential
    public let optimizer: Optimizer
    private let options: TrainOptions
    private let coordinator: Coordinator?
    private let sampler: ShardedSampler
    private var batches: BatchAssembler
    /// Per-epoch running statistics (1 × Statistic.width), on the device.
    private let statistics: Tensor
    private var position: TrainingPosition
    /// Sums the gradients over the ranks, wherever the accelerator keeps them.
    let reducer: any GradientReducer
    /// The device's record of the first step with non-finite gradients.
    private let finiteGuard: FiniteGuard
    /// Steps between host reads of `finiteGuard` on a device accelerator
    /// (on the CPU it is read every step: that costs nothing there).
    static let finiteCheckInterval = 50
    /// Time in the gradient allreduce this epoch: in all steps (waits for
    /// slower ranks included), and in the steps sampled after a barrier.
    private var allreduceNanoseconds: (total: UInt64, sampled: UInt64, samples: Int) = (0, 0, 0)

    /// Builds the model replica and agrees on its initial state with every rank.
    public init(config: RunConfig, data: PreparedData, options: TrainOptions, communicator: any Communicator,
                accelerator: any Accelerator, console: Console) throws {
        self.config = config
        self.data = data
        self.options = options
        self.communicator = communicator
        self.accelerator = accelerator
        self.console = console
        objective = try config.objective()

        let worldSize = communicator.size
        let batch = config.training.batchSize
        guard batch % worldSize == 0 else {
            let lower = batch / worldSize * worldSize, upper = lower + worldSize
            let examples = lower > 0 ? "\(lower) or \(upper)" : "\(upper)"
            throw UserError("training.batch_size: \(batch) is the global batch and must divide evenly over \(worldSize) ranks; use a multiple of \(worldSize), e.g. \(examples)")
        }
        sampler = ShardedSampler(sampleCount: data.training.count, globalBatchSize: batch,
                                 seed: config.training.seed, shuffle: config.training.shuffle)
        model = Sequential(inputSize: data.featureCount, layers: config.layerSpecs, objective: objective,
                           accelerator: accelerator)
        let totalSteps = config.training.epochs * sampler.stepsPerEpoch
        optimizer = Optimizer(rule: config.optimizer.rule, schedule: config.optimizer.learningRateSchedule(totalSteps: totalSteps),
                              weightDecay: config.optimizer.weightDecay, parameterCount: model.parameterCount,
                              accelerator: accelerator)
        let localRows = batch / worldSize + 1
        model.reserve(batch: localRows)
        batches = BatchAssembler(accelerator: accelerator, objective: objective,
                                 featureCount: data.featureCount, labelWidth: data.training.labelWidth, rows: max(localRows, 1024))
        statistics = accelerator.tensor(rows: 1, columns: Statistic.width)
        reducer = makeGradientReducer(communicator: communicator, accelerator: accelerator, count: model.parameterCount)
        finiteGuard = FiniteGuard(accelerator: accelerator)
        position = TrainingPosition(epoch: 0, stepInEpoch: 0, globalStep: 0, worldSize: worldSize,
                                    epochStatistics: [Double](repeating: 0, count: Statistic.width), epochSamples: 0)
        coordinator = communicator.isCoordinator
            ? Coordinator(runDirectory: options.runDirectory, keep: options.keepCheckpoints, console: console) : nil

        establishInitialState()
    }

    // MARK: - Start-up agreement

    /// Rank 0 initializes (or restores) parameters, optimizer state and
    /// position, and broadcasts them, so every replica starts identical.
    private func establishInitialState() {
        var parameters: [Float]
        var state = [Float](repeating: 0, count: optimizer.state.count)
        // epoch, step in epoch, global step, optimizer steps, samples this epoch.
        var header = [Double](repeating: 0, count: 5)
        if communicator.isCoordinator {
            if let snapshot = options.resumeFrom, let saved = snapshot.position {
                parameters = snapshot.parameters
                state = snapshot.optimizerState
                header = [Double(saved.epoch), Double(saved.stepInEpoch), Double(saved.globalStep),
                          Double(snapshot.optimizerSteps), Double(saved.epochSamples)]
            } else if let initial = options.initialParameters {
                parameters = initial
            } else {
                model.initialize(seed: config.training.seed)
                parameters = accelerator.values(model.parameters)
            }
        } else {
            parameters = [Float](repeating: 0, count: model.parameterCount)
        }
        communicator.broadcast(&parameters)
        if !state.isEmpty { communicator.broadcast(&state) }
        header.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) }

        parameters.withUnsafeBufferPointer { accelerator.copy($0, to: model.parameters) }
        if !state.isEmpty { state.withUnsafeBufferPointer { accelerator.copy($0, to: optimizer.state) } }
        position.epoch = Int(header[0])
        position.stepInEpoch = Int(header[1])
        position.globalStep = Int(header[2])
        optimizer.steps = Int(header[3])
        position.epochSamples = Int(header[4])
        // The interrupted epoch's running sums (over all ranks) continue on
        // rank 0 only, so the epoch-end reduction counts them once.
        if communicator.isCoordinator, let saved = options.resumeFrom?.position {
            let running = saved.epochStatistics.map(Float.init)
            running.withUnsafeBufferPointer { accelerator.copy($0, to: statistics) }
        }
    }

    // MARK: - Training

    /// Trains to the configured number of epochs, or until a stop signal.
    public func run() throws -> TrainingOutcome {
        var history: [EpochRecord] = []
        let steps = sampler.stepsPerEpoch
        coordinator?.prepareRun(resumedAt: options.resumeFrom?.position)
        if options.resumeFrom == nil, let coordinator {
            coordinator.saveConfig(config)
        }

        while position.epoch < config.training.epochs {
            let epoch = position.epoch
            console.line("Epoch \(epoch + 1)/\(config.training.epochs)")
            let order = sampler.order(epoch: epoch)
            let start = Date()
            let startStep = position.stepInEpoch
            let startSamples = position.epochSamples
            allreduceNanoseconds = (0, 0, 0)
            var stopped = false

            while position.stepInEpoch < steps {
                let step = position.stepInEpoch
                let global = sampler.globalBatch(step: step)
                let local = sampler.localBatch(step: step, rank: communicator.rank, worldSize: communicator.size)
                try trainStep(order: order, global: global, local: local)
                position.stepInEpoch += 1
                position.globalStep += 1
                position.epochSamples += global.count

                if communicator.isCoordinator && console.wantsProgress(step: position.stepInEpoch, of: steps) {
                    console.progress(step: position.stepInEpoch, of: steps, elapsed: Date().timeIntervalSince(start),
                                     metrics: localMetrics().named())
                }
                if StopSignal.agreed(communicator, step: position.globalStep) {
                    stopped = true
                    break
                }
                if options.checkpointEvery > 0, position.globalStep % options.checkpointEvery == 0,
                   position.stepInEpoch < steps {
                    try checkpoint()
                }
            }
            if stopped {
                try checkpoint()
                console.line("")
                let launcher = communicator.size > 1 ? "mpirun -n \(communicator.size) " : ""
                console.line("nntrain: stopped by signal at epoch \(epoch + 1), step \(position.stepInEpoch)/\(steps); checkpoint written. Resume with: \(launcher)nntrain train --run-dir \(options.runDirectory) --resume")
                return TrainingOutcome(history: history, test: nil, stoppedEarly: true, modelPath: nil)
            }

            try ensureFinite()
            let seconds = Date().timeIntervalSince(start)
            let trainMetrics = reduceEpochMetrics()
            let validation = data.validation.map { evaluate($0) }
            let stepsRun = steps - startStep
            let samplesRun = Double(position.epochSamples - startSamples)
            let record = EpochRecord(epoch: epoch + 1, training: trainMetrics, validation: validation, seconds: seconds,
                                     samplesPerSecond: samplesRun / max(seconds, 1e-9),
                                     learningRate: optimizer.currentRate,
                                     allreduceMilliseconds: communicator.size > 1 && allreduceNanoseconds.samples > 0
                                        ? Double(allreduceNanoseconds.sampled) / 1e6 / Double(allreduceNanoseconds.samples) : nil,
                                     allreduceWaitMilliseconds: communicator.size > 1
                                        ? Double(allreduceNanoseconds.total) / 1e6 / Double(max(stepsRun, 1)) : nil)
            history.append(record)
            reportEpoch(record, steps: steps, stepsRun: stepsRun)

            position.epoch += 1
            position.stepInEpoch = 0
            position.epochSamples = 0
            position.epochStatistics = [Double](repeating: 0, count: Statistic.width)
            accelerator.fill(statistics, with: 0)
            try checkpoint()
        }

        try verifyReplicas()
        let test = data.test.map { evaluate($0) }
        if let test {
            console.line("test" + Console.format(test.named()))
        }
        var modelPath: String?
        if let coordinator {
            let final = snapshot()
            modelPath = try coordinatorWrite { try coordinator.saveModel(final) }
            console.line("saved \(modelPath!)")
        }
        return TrainingOutcome(history: history, test: test, stoppedEarly: false, modelPath: modelPath)
    }

    /// Checks that every rank ends with bit-identical parameters.
    private func verifyReplicas() throws {
        let values = accelerator.values(model.parameters)
        let checksum = values.withUnsafeBytes { CRC32C.checksum($0) }
        let all = communicator.allGather(UInt64(checksum))
        let hex = String(format: "%08x", checksum)
        guard all.allSatisfy({ $0 == all[0] }) else {
            let differing = all.indices.filter { all[$0] != all[0] }.map(String.init).joined(separator: ", ")
            throw UserError("replicas diverged: the parameters of rank(s) \(differing) differ from rank 0's (CRC-32C \(hex)); please report this as a bug")
        }
        if communicator.size > 1 {
            console.line("parameters: CRC-32C \(hex), identical on all \(communicator.size) ranks")
        }
    }

    /// One optimizer step on this rank's slice `local` of the global batch.
    private func trainStep(order: [Int32], global: Range<Int>, local: Range<Int>) throws {
        model.zeroGradients()
        if !local.isEmpty {
            let (inputs, targets) = order.withUnsafeBufferPointer {
                batches.load(data.training, indices: UnsafeBufferPointer(rebasing: $0[local]))
            }
            let pass = Pass(training: true, seed: config.training.seed, step: position.globalStep,
                            rowOffset: local.lowerBound - global.lowerBound)
            model.accumulateGradients(inputs: inputs, targets: targets, gradientScale: 1 / Float(global.count),
                                      pass: pass, statistics: statistics)
        }
        reduceGradients()
        if model.hasPenalties { model.addPenalties(rows: local.count, statistics: statistics) }
        let step = position.globalStep + 1
        accelerator.checkFinite(model.gradients, step: step, flag: finiteGuard.tensor)
        optimizer.apply(parameters: model.parameters, gradients: model.gradients, skipIfFlagged: finiteGuard.tensor)
        if accelerator.isHostMemory || step % Trainer.finiteCheckInterval == 0 { try ensureFinite() }
    }

    /// Stops the run if a step's gradients held NaN or ±inf. The optimizer
    /// skipped that step and every later one, so the parameters are still
    /// those from before it. Every rank reads the same record at the same step.
    private func ensureFinite() throws {
        guard let bad = finiteGuard.read(accelerator) else { return }
        let epoch = (bad.step - 1) / sampler.stepsPerEpoch + 1
        throw UserError("step \(bad.step) (epoch \(epoch)): \(bad.count) gradient values are NaN or infinite after the allreduce; training stopped before applying them. Lower optimizer.learning_rate, or scale the data (data.scale: standardize)")
    }

    /// Sums the gradients over all ranks: one allreduce of the flat buffer.
    private func reduceGradients() {
        guard communicator.size > 1 else { return }
        // Every 16th step the ranks first line up at a barrier, so the time
        // measured is the allreduce itself, not a wait for a slower rank.
        let sampled = position.globalStep % 16 == 0
        if sampled { communicator.barrier() }
        let started = DispatchTime.now().uptimeNanoseconds
        defer {
            let elapsed = DispatchTime.now().uptimeNanoseconds - started
            allreduceNanoseconds.total += elapsed
            if sampled {
                allreduceNanoseconds.sampled += elapsed
                allreduceNanoseconds.samples += 1
            }
        }
        reducer.sum(model.gradients)
    }

    // MARK: - Metrics

    private func makeMetrics(_ sums: [Double], samples: Int) -> Metrics {
        Metrics(statistics: sums, samples: samples, isClassifier: objective.isClassifier,
                accuracyUnits: objective.accuracyUnitsPerSample, outputs: objective.outputs)
    }

    /// This rank's running epoch metrics (for the progress bar only).
    private func localMetrics() -> Metrics {
        let local = accelerator.values(statistics).map(Double.init)
        let share = Double(position.epochSamples) / Double(communicator.size)
        return makeMetrics(local, samples: Int(share.rounded()))
    }

    /// The epoch's training metrics, summed over ranks.
    private func reduceEpochMetrics() -> Metrics {
        var sums = accelerator.values(statistics).map(Double.init)
        sums.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return makeMetrics(sums, samples: position.epochSamples)
    }

    /// Loss and metrics on a dataset, each rank evaluating its shard.
    public func evaluate(_ dataset: Dataset) -> Metrics {
        let shard = ShardedSampler.shard(count: dataset.count, rank: communicator.rank, worldSize: communicator.size)
        let sums = Trainer.evaluate(model: model, dataset: dataset, range: shard, batches: &batches)
        var total = sums
        total.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return makeMetrics(total, samples: dataset.count)
    }

    /// Summed statistics of `model` over `range` of `dataset`, in chunks.
    static func evaluate(model: Sequential, dataset: Dataset, range: Range<Int>, batches: inout BatchAssembler) -> [Double] {
        let stats = model.accelerator.tensor(rows: 1, columns: Statistic.width)
        var start = range.lowerBound
        let chunk = batches.rows
        var indices = [Int32](repeating: 0, count: chunk)
        while start < range.upperBound {
            let end = min(start + chunk, range.upperBound)
            for i in start..<end { indices[i - start] = Int32(i) }
            let (inputs, targets) = indices.withUnsafeBufferPointer {
                batches.load(dataset, indices: UnsafeBufferPointer(rebasing: $0[0..<(end - start)]))
            }
            model.evaluate(inputs: inputs, targets: targets, statistics: stats)
            start = end
        }
        return model.accelerator.values(stats).map(Double.init)
    }

    private func reportEpoch(_ record: EpochRecord, steps: Int, stepsRun: Int) {
        let perStep = record.seconds / Double(max(stepsRun, 1))
        var metrics = record.training.named()
        if let validation = record.validation { metrics += validation.named(prefix: "val_") }
        console.line(Console.counter(steps, steps) + " " + Console.bar(steps, steps) + " - "
                     + Console.duration(record.seconds) + " " + String(format: "%.0fms/step", perStep * 1000)
                     + Console.format(metrics) + String(format: " - %.0f samples/s", record.samplesPerSecond))
        coordinator?.appendMetrics(record)
    }

    // MARK: - Checkpoints

    /// The full state as host values: the final model, or with
    /// `epochStatistics` (the epoch's running sums over all ranks) a checkpoint.
    func snapshot(epochStatistics: [Double]? = nil) -> ModelSnapshot {
        let includeState = epochStatistics != nil
        var saved = position
        saved.epochStatistics = epochStatistics ?? []
        return ModelSnapshot(config: config, inputSize: data.featureCount, scaler: data.scaler, classNames: data.classNames,
                             parameters: accelerator.values(model.parameters),
                             optimizerState: includeState ? accelerator.values(optimizer.state) : [],
                             optimizerSteps: optimizer.steps, position: includeState ? saved : nil)
    }

    /// Rank 0 writes a checkpoint. Statistics are rank-local, so the epoch's
    /// running sums are reduced first (every rank takes part).
    private func checkpoint() throws {
        try ensureFinite()
        var sums = accelerator.values(statistics).map(Double.init)
        sums.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        guard let coordinator else { return }
        let checkpoint = snapshot(epochStatistics: sums)
        try coordinatorWrite { try coordinator.saveCheckpoint(checkpoint) }
    }

    /// Runs a write only rank 0 performs. If it fails in a job of several
    /// ranks, the others would wait for rank 0 forever: stop the whole job.
    private func coordinatorWrite<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as UserError where communicator.size > 1 {
            Launch.printError(error.message)
            communicator.abort(code: 2)
        }
    }
}

// MARK: - Batches

/// Gathers dataset rows into device tensors, encoding labels as the loss
/// expects them. On a host-memory accelerator rows go straight into the
/// tensors. On a device they go through two sets of host buffers used in
/// turn, so gathering the next batch overlaps the copy of this one.
struct BatchAssembler {
    let accelerator: any Accelerator
    let objective: Objective
    let featureCount: Int
    let labelWidth: Int
    /// Largest batch it holds.
    let rows: Int
    /// inputs: (rows × featureCount); targets: (rows × objective.targetWidth).
    private let inputs: Tensor
    private let targets: Tensor
    private var hostLabels: [Float]
    /// Device accelerators only: (features, targets) host buffers, used in turn.
    private let uploads: [(features: HostBuffer, targets: HostBuffer)]
    private var nextUpload = 0

    init(accelerator: any Accelerator, objective: Objective, featureCount: Int, labelWidth: Int, rows: Int) {
        self.accelerator = accelerator
        self.objective = objective
        self.featureCount = featureCount
        self.labelWidth = labelWidth
        self.rows = rows
        inputs = accelerator.tensor(rows: rows, columns: featureCount)
        targets = accelerator.tensor(rows: rows, columns: objective.targetWidth)
        hostLabels = [Float](repeating: 0, count: rows * labelWidth)
        uploads = accelerator.isHostMemory ? [] : (0..<2).map { _ in
            (accelerator.allocateHostBuffer(rows * featureCount), accelerator.allocateHostBuffer(rows * objective.targetWidth))
        }
    }

    /// Loads the rows `indices` of `dataset`; the tensors stay valid until the next load.
    mutating func load(_ dataset: Dataset, indices: UnsafeBufferPointer<Int32>) -> (Tensor, Tensor) {
        let n = indices.count
        precondition(n <= rows)
        let x = inputs.prefix(rows: n), y = targets.prefix(rows: n)
        let features: UnsafeMutablePointer<Float>, encoded: UnsafeMutablePointer<Float>
        var upload: (features: HostBuffer, targets: HostBuffer)?
        if accelerator.isHostMemory {
            (features, encoded) = (x.hostPointer, y.hostPointer)
        } else {
            let set = uploads[nextUpload]
            nextUpload = 1 - nextUpload
            set.features.waitUntilWritable()
            set.targets.waitUntilWritable()
            (features, encoded) = (set.features.baseAddress, set.targets.baseAddress)
            upload = set
        }
        hostLabels.withUnsafeMutableBufferPointer { labels in
            dataset.gather(indices: indices, features: features, labels: labels.baseAddress!)
            objective.encodeTargets(labels: labels.baseAddress!, labelWidth: dataset.labelWidth, rows: n, into: encoded)
        }
        if let upload {
            accelerator.copy(upload.features, to: x)
            accelerator.copy(upload.targets, to: y)
        }
        return (x, y)
    }
}
