// The data-parallel training loop. Every rank runs it; rank 0 also holds the
// run store that writes checkpoints and the final model. The loop prints
// nothing and reads nothing from the environment: it reports events and
// polls a stop request.
//
// Per step: gather this rank's slice of the global batch → forward → loss →
// backward into the flat gradient buffer (pre-scaled by 1/global batch, so
// the allreduce sum *is* the batch mean) → one allreduce → weight penalties →
// finite check → optimizer step, identical on every rank.
//
// The finite checks leave their answer on the device (a `FiniteGuard`): one
// pass over the summed gradients (NaN, ±inf, or a square that overflows),
// and the optimizer's own loop over the weights it writes (which then covers
// its state). The optimizer skips every step once the record
// is set, and the host reads it every `finiteCheckInterval` steps and before
// anything is saved, so a GPU never waits for the host within those steps,
// and nothing non-finite is ever written. With `training.on_nonfinite: skip`
// each update is first tried without writing, and the host reads the record
// every step: a bad step is skipped on every rank alike.

import Foundation
import NNCore
import NNData
import NNDistributed
import SafeTensors

/// Where a run begins.
public enum StartingPoint: Sendable {
    /// Fresh weights from the seed.
    case fresh
    /// These parameters, in flat layout order (weights written elsewhere).
    case weights([Float])
    /// A checkpoint: parameters, optimizer state and position.
    case checkpoint(ModelSnapshot)

    var checkpoint: ModelSnapshot? {
        if case .checkpoint(let snapshot) = self { return snapshot }
        return nil
    }
}

/// How often the loop does its periodic work.
public struct TrainingSchedule: Sendable {
    /// Also checkpoint every this many steps (0: only at epoch ends and on stops).
    public var checkpointEvery: Int
    /// Also checkpoint when this many seconds have passed since the last
    /// checkpoint (0: never by time), at the next poll of the stop request,
    /// so a process killed mid-epoch loses at most that much work.
    public var checkpointSeconds: Double
    /// Steps between two polls of the stop request in a job of several ranks
    /// (each poll is a collective; a world of one polls every step).
    public var stopCheckInterval: Int
    /// Steps between host reads of the non-finite record on a device
    /// accelerator (on the CPU it is read every step: that costs nothing).
    public var finiteCheckInterval: Int

    /// The schedule; by default checkpoints only at epoch ends.
    public init(checkpointEvery: Int = 0, checkpointSeconds: Double = 0, stopCheckInterval: Int = 8, finiteCheckInterval: Int = 50) {
        self.checkpointEvery = checkpointEvery
        self.checkpointSeconds = max(0, checkpointSeconds)
        self.stopCheckInterval = max(1, stopCheckInterval)
        self.finiteCheckInterval = max(1, finiteCheckInterval)
    }
}

/// What a run returns.
public enum TrainingOutcome: Sendable {
    /// Every epoch ran; rank 0 saved the final model at `modelPath` (nil on the other ranks).
    case finished(RunResult, modelPath: String?)
    /// A stop request ended it at a step boundary, after a checkpoint.
    case stopped(StopPoint, history: [EpochRecord])
}

/// Runs training on one rank of a job.
public final class Trainer {
    public let config: RunConfig
    public let data: PreparedData
    public let communicator: any Communicator
    public let accelerator: any Accelerator
    public let objective: Objective
    public let model: Sequential
    public let optimizer: Optimizer
    /// Sums the gradients over the ranks, wherever the accelerator keeps them.
    public internal(set) var reducer: any GradientReducer
    /// Each rank's part of the optimizer update, when it is sharded (see
    /// `OptimizerSharding`); nil: every rank sums and applies everything.
    public internal(set) var sharding: OptimizerSharding?
    let schedule: TrainingSchedule
    /// Rank 0's files; nil on the other ranks.
    let store: RunStore?
    /// Where rank 0's files go (nil on the other ranks).
    public var runDirectory: String? { store?.directory }
    let sampler: ShardedSampler
    var batches: BatchAssembler
    /// Per-epoch running statistics (1 × Statistic.width), on the device.
    let statistics: Tensor
    /// The device's record of the first step with non-finite gradients.
    let finiteGuard: FiniteGuard
    var position: TrainingPosition
    /// Where a resumed run continues from (nil for a fresh one).
    public let resumedAt: TrainingPosition?
    var allreduceTimer = AllreduceTimer()
    /// Early stopping's rule and standing (nil when the config has none).
    var earlyStopping: EarlyStopping?
    /// The best epoch's parameters, kept on every rank when early stopping
    /// may restore them and this process trained that epoch.
    var bestParameters: [Float]?
    /// Every rank's host name, by rank.
    let hosts: [String]
    /// When the last checkpoint was written (or the run began).
    var lastCheckpoint = Date()

    /// Builds the model replica and agrees on its initial state with every
    /// rank: rank 0's `start` is broadcast (the others' is ignored).
    public init(config: RunConfig, data: PreparedData, accelerator: any Accelerator, communicator: any Communicator,
                start: StartingPoint = .fresh, schedule: TrainingSchedule = TrainingSchedule(), store: RunStore?) throws {
        let worldSize = communicator.size
        let batch = config.training.batchSize
        guard batch % worldSize == 0 else {
            let lower = batch / worldSize * worldSize, upper = lower + worldSize
            let examples = lower > 0 ? "\(lower) or \(upper)" : "\(upper)"
            throw UserError("training.batch_size: \(batch) is the global batch and must divide evenly over \(worldSize) ranks; use a multiple of \(worldSize), e.g. \(examples)")
        }
        self.config = config
        self.data = data
        self.accelerator = accelerator
        self.communicator = communicator
        self.schedule = schedule
        self.store = communicator.isCoordinator ? store : nil
        objective = try config.objective()
        sampler = ShardedSampler(sampleCount: data.training.count, globalBatchSize: batch,
                                 seed: config.training.seed, shuffle: config.training.shuffle)
        // On one host, gradients (and parameters, which the sharded update
        // gathers) in memory the other ranks read: sums and gathers can
        // then skip MPI's copies (see `SharedMemorySum.swift`).
        let count = Sequential.parameterCount(inputSize: data.featureCount, layers: config.layerSpecs)
        let sharedGradients = communicator.allocateShared(count: count, wanted: accelerator.isHostMemory)
        let sharedParameters = communicator.allocateShared(count: count, wanted: sharedGradients != nil)
        model = Sequential(inputSize: data.featureCount, layers: config.layerSpecs, objective: objective,
                           accelerator: accelerator, parameterStorage: sharedParameters, gradientStorage: sharedGradients)
        let totalSteps = config.training.epochs * sampler.stepsPerEpoch
        optimizer = Optimizer(rule: config.optimizer.rule, schedule: config.optimizer.learningRateSchedule(totalSteps: totalSteps),
                              weightDecay: config.optimizer.weightDecay, parameterCount: model.parameterCount,
                              accelerator: accelerator)
        let localRows = batch / worldSize + 1
        model.reserve(batch: localRows)
        batches = Self.batchAssembler(rows: localRows, accelerator: accelerator, objective: objective, data: data)
        statistics = accelerator.tensor(rows: 1, columns: Statistic.width)
        reducer = makeGradientReducer(communicator: communicator, accelerator: accelerator, count: model.parameterCount,
                                      compression: config.training.gradientCompression)
        finiteGuard = FiniteGuard(accelerator: accelerator)
        position = TrainingPosition(epoch: 0, stepInEpoch: 0, globalStep: 0, worldSize: worldSize,
                                    epochStatistics: [Double](repeating: 0, count: Statistic.width), epochSamples: 0)
        resumedAt = start.checkpoint?.position
        position.skippedSteps = resumedAt?.skippedSteps
        position.consecutiveSkips = resumedAt?.consecutiveSkips
        let savedStopping = start.checkpoint?.position?.earlyStopping
        earlyStopping = config.training.earlyStopping.map { EarlyStopping($0, state: savedStopping) }
        hosts = Trainer.gatherHostNames(communicator)
        establishInitialState(start)
    }

    /// Tensors for a step's `rows` rows (at least 1,024: evaluation goes in chunks of that many).
    private static func batchAssembler(rows: Int, accelerator: any Accelerator, objective: Objective,
                                       data: PreparedData) -> BatchAssembler {
        BatchAssembler(accelerator: accelerator, objective: objective, featureCount: data.featureCount,
                       labelWidth: data.training.labelWidth, rows: max(rows, 1024))
    }

    /// Trains to the configured number of epochs, or until `stop` is requested.
    public func run(observers: any TrainingObserver = TrainingObservers(), stop: any StopRequest = StopFlag()) throws -> TrainingOutcome {
        if let store {
            store.prepare()
            if resumedAt == nil { store.saveConfig(config) }
        }
        observers.observe(.started(summary))
        lastCheckpoint = Date()
        var history: [EpochRecord] = []
        let steps = sampler.stepsPerEpoch
        while position.epoch < config.training.epochs && earlyStopping?.state.stoppedEpoch == nil {
            observers.observe(.epochStarted(epoch: position.epoch + 1, epochs: config.training.epochs))
            let order = sampler.order(epoch: position.epoch)
            let start = Date()
            let startStep = position.stepInEpoch, startSamples = position.epochSamples
            allreduceTimer = AllreduceTimer()

            while position.stepInEpoch < steps {
                let step = position.stepInEpoch
                let global = sampler.globalBatch(step: step)
                let local = slice(step: step)
                let stepStarted = DispatchTime.now().uptimeNanoseconds
                communicator.markProgress(step: position.globalStep + 1)
                try trainStep(order: order, global: global, local: local)
                allreduceTimer.addStep(nanoseconds: DispatchTime.now().uptimeNanoseconds - stepStarted)
                position.stepInEpoch += 1
                position.globalStep += 1
                position.epochSamples += global.count
                store?.heartbeat(epoch: position.epoch + 1, step: position.globalStep)

                if observers.wantsBatchProgress(step: position.stepInEpoch, of: steps) {
                    observers.observe(.batchEnded(BatchProgress(epoch: position.epoch + 1, step: position.stepInEpoch, steps: steps,
                                                                elapsed: Date().timeIntervalSince(start), metrics: localMetrics())))
                }
                let poll = agreedPoll(stop)
                if poll.stop {
                    try checkpoint(observers)
                    let point = StopPoint(epoch: position.epoch + 1, stepInEpoch: position.stepInEpoch, steps: steps,
                                          globalStep: position.globalStep, worldSize: communicator.size,
                                          runDirectory: store?.directory ?? "")
                    observers.observe(.stopped(point))
                    return .stopped(point, history: history)
                }
                let everySteps = schedule.checkpointEvery > 0 && position.globalStep % schedule.checkpointEvery == 0
                if (everySteps || poll.checkpointDue) && position.stepInEpoch < steps {
                    try checkpoint(observers)
                }
            }

            history.append(try endEpoch(started: start, startStep: startStep, startSamples: startSamples, observers: observers))
        }

        try ensureFinite()
        let earlyStop = try finishEarlyStopping()
        if let earlyStop { observers.observe(.earlyStopped(earlyStop)) }
        let checksum = try verifyReplicas()
        let result = RunResult(history: history, epochsCompleted: position.epoch, test: data.test.map(evaluate),
                               confusion: objective.isClassifier ? data.test.map(confusionMatrix) : nil, earlyStop: earlyStop,
                               parameterChecksum: checksum, worldSize: communicator.size)
        observers.observe(.finished(result))
        let modelPath = try rank0Writes { store in try store.saveModel(snapshot()) }
        if let modelPath { observers.observe(.modelSaved(path: modelPath)) }
        return .finished(result, modelPath: modelPath)
    }

    /// Closes an epoch: its figures (reduced over the ranks), the views'
    /// events, early stopping's decision, and the epoch-end checkpoint.
    private func endEpoch(started: Date, startStep: Int, startSamples: Int, observers: any TrainingObserver) throws -> EpochRecord {
        try ensureFinite()
        let seconds = Date().timeIntervalSince(started)
        let steps = sampler.stepsPerEpoch, stepsRun = steps - startStep
        let several = communicator.size > 1
        let record = EpochRecord(epoch: position.epoch + 1, globalStep: position.globalStep, worldSize: communicator.size,
                                 training: reduceEpochMetrics(), validation: data.validation.map(evaluate),
                                 steps: steps, stepsRun: stepsRun, seconds: seconds,
                                 samplesPerSecond: Double(position.epochSamples - startSamples) / max(seconds, 1e-9),
                                 learningRate: optimizer.currentRate,
                                 allreduceMilliseconds: several ? allreduceTimer.sampledMilliseconds : nil,
                                 allreduceWaitMilliseconds: several ? allreduceTimer.milliseconds(perStep: stepsRun) : nil,
                                 ranks: several ? gatherRankTimings(steps: stepsRun) : nil,
                                 skippedSteps: config.training.skipLimit == nil ? nil : position.skippedSteps ?? 0)
        observers.observe(.epochEnded(record))
        let decision = earlyStopping?.update(record)
        if decision == .improved { try keepBest() }
        // An early stop makes this epoch the last one the views see.
        let last = decision == .stop ? record.epoch : config.training.epochs
        if observers.wantsParameterSample(epoch: record.epoch, of: last) {
            observers.observe(.parametersSampled(parameterSample()))
        }
        position.epoch += 1
        position.stepInEpoch = 0
        position.epochSamples = 0
        if position.skippedSteps != nil { position.skippedSteps = 0 }
        accelerator.fill(statistics, with: 0)
        try checkpoint(observers)
        return record
    }

    /// A new best epoch for early stopping: its checksum goes into the
    /// state, its parameters into best.safetensors (rank 0) and, when they
    /// may be restored, into every rank's memory.
    private func keepBest() throws {
        let parameters = accelerator.values(model.parameters)
        earlyStopping?.noteBest(checksum: parameters.withUnsafeBytes { CRC32C.checksum($0) })
        if earlyStopping?.config.restoreBestWeights == true { bestParameters = parameters }
        _ = try rank0Writes { store in try store.saveBest(snapshot()) }
    }

    /// This rank's rows of step `step`'s global batch.
    func slice(step: Int) -> Range<Int> {
        sampler.localBatch(step: step, rank: communicator.rank, worldSize: communicator.size)
    }

    /// One optimizer step on this rank's slice `local` of the global batch.
    private func trainStep(order: [Int32], global: Range<Int>, local: Range<Int>) throws {
        // A skipped step must leave the epoch's running figures as they were.
        let statisticsBefore = config.training.skipLimit == nil ? nil : accelerator.values(statistics)
        // A rank without rows (an epoch's short last batch) adds -0, which
        // leaves every value it is added to as it was (+0 would turn a sum
        // of -0 into +0), so it changes nothing in the sum.
        if local.isEmpty { accelerator.fill(model.gradients, with: -0.0) } else { model.zeroGradients() }
        if !local.isEmpty {
            let (inputs, targets) = order.withUnsafeBufferPointer {
                batches.load(data.training, indices: UnsafeBufferPointer(rebasing: $0[local]))
            }
            let pass = Pass(training: true, seed: config.training.seed, step: position.globalStep,
                            rowOffset: local.lowerBound - global.lowerBound)
            let reducer = reducer, gradients = model.gradients
            model.accumulateGradients(inputs: inputs, targets: targets, gradientScale: 1 / Float(global.count),
                                      pass: pass, statistics: statistics,
                                      gradientsReady: reducer.overlapsBackward ? { reducer.gradientsReady(gradients, range: $0) } : nil)
        }
        if communicator.size > 1 {
            // An overlapped sum has started during backward: no barrier may
            // come between its buckets, so its allreduce is not sampled alone.
            let lineUp = !reducer.overlapsBackward && position.globalStep % AllreduceTimer.sampleInterval == 0
            allreduceTimer.time(lineUpFirst: lineUp, communicator) {
                if let sharding {
                    communicator.reduceScatterSum(UnsafeMutableBufferPointer(start: model.gradients.hostPointer, count: model.parameterCount),
                                                  parts: sharding.parts)
                } else {
                    reducer.sum(model.gradients)
                }
            }
        }
        if model.hasPenalties { model.addPenalties(rows: local.count, statistics: statistics) }
        let step = position.globalStep + 1
        if let sharding {
            try applySharded(sharding, step: step, sampled: position.globalStep % AllreduceTimer.sampleInterval == 0)
            return
        }
        accelerator.checkFinite(model.gradients, step: step, flag: finiteGuard.tensor)
        if let limit = config.training.skipLimit, let statisticsBefore {
            try skipOrApply(step: step, limit: limit, statisticsBefore: statisticsBefore)
            return
        }
        optimizer.apply(parameters: model.parameters, gradients: model.gradients, guardRecord: finiteGuard.tensor, step: step)
        if accelerator.isHostMemory || step % schedule.finiteCheckInterval == 0 { try ensureFinite() }
    }

    /// `on_nonfinite: skip`: tries the update, and applies it only when its
    /// gradients and results are finite; otherwise the step is skipped (the
    /// same on every rank: they all hold the same sums and parameters), and
    /// `limit` skips in a row stop the run.
    private func skipOrApply(step: Int, limit: Int, statisticsBefore: [Float]) throws {
        optimizer.trial(parameters: model.parameters, gradients: model.gradients, guardRecord: finiteGuard.tensor, step: step)
        guard let bad = finiteGuard.read(accelerator) else {
            optimizer.apply(parameters: model.parameters, gradients: model.gradients, guardRecord: finiteGuard.tensor, step: step)
            if position.consecutiveSkips != nil { position.consecutiveSkips = 0 }
            return
        }
        finiteGuard.clear(accelerator)
        statisticsBefore.withUnsafeBufferPointer { accelerator.copy($0, to: statistics) }
        position.skippedSteps = (position.skippedSteps ?? 0) + 1
        position.consecutiveSkips = (position.consecutiveSkips ?? 0) + 1
        if position.consecutiveSkips! >= limit {
            throw UserError(nonFiniteMessage(bad) + "; \(limit) steps in a row were skipped for NaN or infinity (training.max_consecutive_skips: \(limit)), so training stopped. Lower optimizer.learning_rate, or scale the data (data.scale: standardize)")
        }
    }

    /// Stops the run if a step's gradients, or the weights or state its
    /// update computed, held NaN or ±inf. The optimizer skipped every later
    /// step, and no checkpoint was written since: the latest checkpoint is
    /// the last good one. Every rank reads the same record at the same step.
    func ensureFinite() throws {
        guard let bad = finiteGuard.read(accelerator) else { return }
        let advice = bad.source == .gradients
            ? "Lower optimizer.learning_rate, scale the data (data.scale: standardize), or skip such steps (--on-nonfinite skip)"
            : "Lower optimizer.learning_rate or optimizer.weight_decay, then resume from the last good checkpoint (--resume with --learning-rate)"
        throw UserError(nonFiniteMessage(bad) + "; training stopped, and nothing from this step on was saved. " + advice)
    }

    /// What a set guard record says, in the user's terms: the step, its
    /// epoch, where the values were and the first layer they are in.
    func nonFiniteMessage(_ bad: FiniteGuard.Record) -> String {
        let epoch = (bad.step - 1) / sampler.stepsPerEpoch + 1
        let layer = model.entries.last { $0.offset <= bad.firstIndex }?.name ?? "the parameters"
        switch bad.source {
        case .gradients:
            let values = bad.count == 1 ? "1 gradient value is" : "\(bad.count) gradient values are"
            return "step \(bad.step) (epoch \(epoch)): \(values) NaN, infinite or too large to square (above 1.8e19) after the allreduce, the first in \(layer)"
        case .update:
            return "step \(bad.step) (epoch \(epoch)): the update made \(bad.count == 1 ? "1 weight" : "\(bad.count) weights") NaN or infinite, the first in \(layer)"
        }
    }

    /// Whether any rank was asked to stop, and whether rank 0 finds a
    /// checkpoint due by time. Every rank polls at the same global steps (one
    /// allreduce of two flags), so all of them learn both at the same step.
    private func agreedPoll(_ stop: any StopRequest) -> (stop: Bool, checkpointDue: Bool) {
        guard communicator.size > 1 else { return (stop.isRequested, checkpointDueByTime) }
        guard position.globalStep % schedule.stopCheckInterval == 0 else { return (false, false) }
        var flags = [stop.isRequested ? 1.0 : 0, communicator.isCoordinator && checkpointDueByTime ? 1 : 0]
        flags.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return (flags[0] > 0, flags[1] > 0)
    }

    /// Whether `checkpointSeconds` have passed since the last checkpoint (or the start).
    private var checkpointDueByTime: Bool {
        schedule.checkpointSeconds > 0 && Date().timeIntervalSince(lastCheckpoint) >= schedule.checkpointSeconds
    }

    /// Rank 0 writes a checkpoint. Statistics are rank-local, so the epoch's
    /// running sums are reduced first (every rank takes part).
    private func checkpoint(_ observers: any TrainingObserver) throws {
        try ensureFinite()
        gatherShardedState()
        var sums = accelerator.values(statistics).map(Double.init)
        sums.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        let residuals = gatherResiduals()
        let path = try rank0Writes { store in
            var saved = snapshot(epochStatistics: sums)
            saved.gradientResiduals = residuals
            return try store.saveCheckpoint(saved)
        }
        lastCheckpoint = Date()
        observers.observe(.checkpointSaved(path: path ?? "", globalStep: position.globalStep))
    }

    /// Runs a write that only rank 0 performs, and lets every rank learn
    /// whether it worked, so a failed write stops every rank with rank 0's
    /// message instead of leaving the others waiting. Returns rank 0's result
    /// there and nil elsewhere.
    private func rank0Writes<T>(_ write: (RunStore) throws -> T) throws -> T? {
        var result: T?, failure: UserError?
        if let store {
            do {
                result = try write(store)
            } catch {
                failure = error as? UserError ?? UserError("\(error)")
            }
        }
        guard communicator.size > 1 else {
            if let failure { throw failure }
            return result
        }
        var failed = [failure == nil ? 0.0 : 1]
        failed.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        if failed[0] > 0 { throw CollectiveFailure(message: failure?.message) }
        return result
    }

    /// When early stopping ended the run: goes back to the best epoch's
    /// parameters if asked, and says how it ended. Every rank kept them when
    /// this process trained the best epoch; after a resume rank 0 reads
    /// best.safetensors and every rank takes them. A file that cannot be
    /// read, or holds other weights, keeps the last epoch's parameters and
    /// says why.
    private func finishEarlyStopping() throws -> EarlyStop? {
        guard let stopping = earlyStopping, stopping.state.stoppedEpoch != nil else { return nil }
        guard stopping.config.restoreBestWeights, stopping.state.bestEpoch > 0 else { return stopping.outcome(restored: false) }
        if let best = bestParameters {
            best.withUnsafeBufferPointer { accelerator.copy($0, to: model.parameters) }
            return stopping.outcome(restored: true)
        }
        var best = [Float](repeating: 0, count: model.parameterCount), found: [Float] = [0]
        var problem = "rank 0 could not read best.safetensors"
        if communicator.isCoordinator {
            do {
                best = try readBest(stopping.state)
                found = [1]
            } catch {
                problem = (error as? UserError)?.message ?? "\(error)"
            }
        }
        communicator.broadcast(&found)
        guard found[0] == 1 else { return stopping.outcome(restored: false, problem: problem) }
        communicator.broadcast(&best)
        best.withUnsafeBufferPointer { accelerator.copy($0, to: model.parameters) }
        return stopping.outcome(restored: true)
    }

    /// The best epoch's parameters from best.safetensors, checked against the state's checksum (rank 0).
    private func readBest(_ state: EarlyStoppingState) throws -> [Float] {
        guard let store else { throw UserError("no run directory to read best.safetensors from") }
        let weights = try ModelFile.readWeights(path: store.bestModelPath, layout: model.entries)
        let checksum = weights.withUnsafeBytes { CRC32C.checksum($0) }
        if let expected = state.bestChecksum, expected != checksum {
            throw UserError("\(store.bestModelPath) does not hold epoch \(state.bestEpoch)'s weights (CRC-32C \(String(format: "%08x", checksum)), expected \(String(format: "%08x", expected)))")
        }
        return weights
    }

    /// Checks that every rank ends with bit-identical parameters; returns their CRC-32C.
    private func verifyReplicas() throws -> UInt32 {
        let checksum = accelerator.values(model.parameters).withUnsafeBytes { CRC32C.checksum($0) }
        let all = communicator.allGather(UInt64(checksum))
        guard all.allSatisfy({ $0 == all[0] }) else {
            let differing = all.indices.filter { all[$0] != all[0] }.map(String.init).joined(separator: ", ")
            throw UserError("replicas diverged: the parameters of rank(s) \(differing) differ from rank 0's (CRC-32C \(String(format: "%08x", checksum))); please report this as a bug")
        }
        return checksum
    }
}
