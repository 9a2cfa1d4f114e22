// The trainer's state around the loop: agreeing on where to start, the
// metrics it reduces, the snapshots it saves, and the allreduce timing.

import Foundation
import NNCore
import NNData
import NNDistributed

extension Trainer {
    // MARK: - Start-up agreement

    /// Rank 0 initializes (or restores) parameters, optimizer state and
    /// position, and broadcasts them, so every replica starts identical.
    func establishInitialState(_ start: StartingPoint) {
        var parameters: [Float]
        var state = [Float](repeating: 0, count: optimizer.state.count)
        // epoch, step in epoch, global step, optimizer steps, samples this epoch.
        var header = [Double](repeating: 0, count: 5)
        if communicator.isCoordinator {
            switch start {
            case .checkpoint(let snapshot):
                parameters = snapshot.parameters
                state = snapshot.optimizerState
                let saved = snapshot.position
                header = [Double(saved?.epoch ?? 0), Double(saved?.stepInEpoch ?? 0), Double(saved?.globalStep ?? 0),
                          Double(snapshot.optimizerSteps), Double(saved?.epochSamples ?? 0)]
            case .weights(let initial):
                parameters = initial
            case .fresh:
                model.initialize(seed: config.training.seed)
                parameters = accelerator.values(model.parameters)
            }
        } else {
            parameters = [Float](repeating: 0, count: model.parameterCount)
        }
        communicator.broadcast(&parameters)
        if !state.isEmpty { communicator.broadcast(&state) }
        header.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) }

        restoreResiduals(start.checkpoint)
        parameters.withUnsafeBufferPointer { accelerator.copy($0, to: model.parameters) }
        if !state.isEmpty { state.withUnsafeBufferPointer { accelerator.copy($0, to: optimizer.state) } }
        position.epoch = Int(header[0])
        position.stepInEpoch = Int(header[1])
        position.globalStep = Int(header[2])
        optimizer.steps = Int(header[3])
        position.epochSamples = Int(header[4])
        // The interrupted epoch's running sums (over all ranks) continue on
        // rank 0 only, so the epoch-end reduction counts them once.
        if communicator.isCoordinator, let saved = resumedAt {
            let running = saved.epochStatistics.map(Float.init)
            running.withUnsafeBufferPointer { accelerator.copy($0, to: statistics) }
        }
    }

    /// With gradient compression, every rank's residual (what rounding has
    /// not yet passed on), rank by rank, on rank 0; nil elsewhere or without
    /// compression. A collective: every rank calls it.
    func gatherResiduals() -> [Float]? {
        guard let mine = reducer.residual else { return nil }
        let n = mine.count, ranks = communicator.size
        var all = [Float](repeating: 0, count: n * ranks)
        all.withUnsafeMutableBufferPointer { slots in
            _ = UnsafeMutableBufferPointer(rebasing: slots[communicator.rank * n..<(communicator.rank + 1) * n]).update(from: mine)
            // Every other slot is zero, so the sum is each rank's values exactly.
            communicator.allReduceSum(slots)
        }
        return communicator.isCoordinator ? all : nil
    }

    /// Gives every rank its residual from a checkpoint (a collective): its
    /// own when the checkpoint was written by as many ranks; with another
    /// world size, an even share of the saved residuals' sum, so what
    /// rounding had not yet passed on is still passed on (the ranks' sum is
    /// the gradient, whatever their number). None saved: they start at zero.
    func restoreResiduals(_ checkpoint: ModelSnapshot?) {
        guard reducer.residual != nil else { return }
        let n = model.parameterCount, ranks = communicator.size
        var header = [Double(checkpoint?.gradientResiduals?.count ?? 0), Double(checkpoint?.position?.worldSize ?? 0)]
        header.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) }
        let saved = Int(header[1])
        guard saved > 0, n > 0, Int(header[0]) == n * saved else { return }
        if saved == ranks {
            var all = communicator.isCoordinator ? checkpoint?.gradientResiduals ?? [] : [Float](repeating: 0, count: n * ranks)
            communicator.broadcast(&all)
            reducer.restoreResidual(Self.residual(of: communicator.rank, ranks: ranks, from: all, savedBy: saved))
        } else {
            // Every rank gets the same share: rank 0 makes it, the others receive n values.
            var share = communicator.isCoordinator
                ? Self.residual(of: 0, ranks: ranks, from: checkpoint?.gradientResiduals ?? [], savedBy: saved)
                : [Float](repeating: 0, count: n)
            communicator.broadcast(&share)
            reducer.restoreResidual(share)
        }
    }

    /// Rank `rank`'s residual out of `all`, the residuals of `saved` ranks one
    /// after another: its own slice when `saved == ranks`, else the sum over
    /// the saved ranks (in rank order) divided by `ranks`.
    static func residual(of rank: Int, ranks: Int, from all: [Float], savedBy saved: Int) -> [Float] {
        let n = all.count / saved
        if saved == ranks { return Array(all[rank * n..<(rank + 1) * n]) }
        var total = Array(all[0..<n])
        for r in 1..<max(saved, 1) {
            for i in 0..<n { total[i] += all[r * n + i] }
        }
        let share = Float(ranks)
        return total.map { $0 / share }
    }

    /// What `started` reports.
    var summary: RunStart {
        RunStart(config: config, trainingSamples: data.training.count, validationSamples: data.validation?.count,
                 testSamples: data.test?.count, featureCount: data.featureCount, parameterCount: model.parameterCount,
                 accelerator: accelerator.name, communicator: communicator.name,
                 gradientReduction: sharding == nil ? reducer.name : "reduce-scatter, each rank updates 1/\(communicator.size) of the parameters, all-gather",
                 worldSize: communicator.size, resumedAt: resumedAt, runDirectory: store?.directory ?? "", hosts: hosts)
    }

    /// Every rank's host name, by rank (each rank broadcasts its own in turn).
    static func gatherHostNames(_ communicator: any Communicator) -> [String] {
        var buffer = [CChar](repeating: 0, count: 256)
        let mine = gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "unknown"
        guard communicator.size > 1 else { return [mine] }
        return (0..<communicator.size).map { root in
            let bytes = communicator.broadcast(bytes: root == communicator.rank ? Array(mine.utf8) : [], root: root)
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    // MARK: - Metrics

    func makeMetrics(_ sums: [Double], samples: Int) -> Metrics {
        Metrics(statistics: sums, samples: samples, isClassifier: objective.isClassifier,
                accuracyUnits: objective.accuracyUnitsPerSample, outputs: objective.outputs)
    }

    /// This rank's running epoch metrics (for progress displays only).
    func localMetrics() -> Metrics {
        let local = accelerator.values(statistics).map(Double.init)
        let share = Double(position.epochSamples) / Double(communicator.size)
        return makeMetrics(local, samples: Int(share.rounded()))
    }

    /// The epoch's training metrics, summed over ranks.
    func reduceEpochMetrics() -> Metrics {
        var sums = accelerator.values(statistics).map(Double.init)
        sums.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return makeMetrics(sums, samples: position.epochSamples)
    }

    /// Every rank's mean step and allreduce times over the `steps` steps of
    /// this epoch, by rank (one small allreduce).
    func gatherRankTimings(steps: Int) -> [RankTiming] {
        let size = communicator.size
        var times = [Double](repeating: 0, count: 2 * size)
        let wait = allreduceTimer.milliseconds(perStep: steps)
        times[2 * communicator.rank] = allreduceTimer.stepMilliseconds(perStep: steps) - wait
        times[2 * communicator.rank + 1] = wait
        times.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return (0..<size).map { RankTiming(stepMilliseconds: max(0, times[2 * $0]), waitMilliseconds: times[2 * $0 + 1]) }
    }

    /// The test set's (true, predicted) counts, each rank counting its shard.
    func confusionMatrix(_ dataset: Dataset) -> ConfusionMatrix {
        let shard = ShardedSampler.shard(count: dataset.count, rank: communicator.rank, worldSize: communicator.size)
        let classes = objective.outputs == 1 ? 2 : objective.outputs
        var counts = Evaluation.confusionCounts(model: model, dataset: dataset, range: shard, classes: classes, batches: &batches)
        counts.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        let names = data.classNames ?? (0..<classes).map(String.init)
        return ConfusionMatrix(classes: names, counts: (0..<classes).map { t in (0..<classes).map { Int(counts[t * classes + $0]) } })
    }

    /// The parameters and the last step's gradients of every dense layer, on the host.
    func parameterSample() -> ParameterSample {
        let parameters = accelerator.values(model.parameters), gradients = accelerator.values(model.gradients)
        var layers: [LayerSample] = []
        var index = 0
        while index + 1 < model.entries.count {
            let weight = model.entries[index], bias = model.entries[index + 1]
            let w = weight.offset..<weight.offset + weight.count, b = bias.offset..<bias.offset + bias.count
            layers.append(LayerSample(name: String(weight.name.dropLast(".weight".count)), weightShape: weight.shape,
                                      weight: Array(parameters[w]), bias: Array(parameters[b]),
                                      weightGradient: Array(gradients[w]), biasGradient: Array(gradients[b])))
            index += 2
        }
        return ParameterSample(epoch: position.epoch + 1, globalStep: position.globalStep, layers: layers)
    }

    /// Loss and metrics on a dataset, each rank evaluating its shard.
    public func evaluate(_ dataset: Dataset) -> Metrics {
        let shard = ShardedSampler.shard(count: dataset.count, rank: communicator.rank, worldSize: communicator.size)
        var sums = Evaluation.statistics(model: model, dataset: dataset, range: shard, batches: &batches)
        sums.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
        return makeMetrics(sums, samples: dataset.count)
    }

    // MARK: - Snapshots

    /// The full state as host values: the final model, or with
    /// `epochStatistics` (the epoch's running sums over all ranks) a checkpoint.
    func snapshot(epochStatistics: [Double]? = nil) -> ModelSnapshot {
        let includeState = epochStatistics != nil
        var saved = position
        saved.epochStatistics = epochStatistics ?? []
        saved.earlyStopping = earlyStopping?.state
        if position.skippedSteps != nil || position.consecutiveSkips != nil {
            saved.skippedSteps = position.skippedSteps
            saved.consecutiveSkips = position.consecutiveSkips
        }
        var snapshot = ModelSnapshot(config: config, inputSize: data.featureCount, scaler: data.scaler, classNames: data.classNames,
                                     parameters: accelerator.values(model.parameters),
                                     optimizerState: includeState ? accelerator.values(optimizer.state) : [],
                                     optimizerSteps: optimizer.steps, position: includeState ? saved : nil)
        snapshot.featureNames = data.training.featureNames
        return snapshot
    }
}

/// Time in the gradient allreduce over one epoch: in every step (waits for
/// slower ranks included), and in the steps that line the ranks up at a
/// barrier first, which time the allreduce itself.
struct AllreduceTimer {
    /// Every this many steps the ranks line up first.
    static let sampleInterval = 16
    private var total: UInt64 = 0, sampled: UInt64 = 0, samples = 0, steps: UInt64 = 0

    /// Counts the time of a whole step (the allreduce inside it included).
    mutating func addStep(nanoseconds: UInt64) { steps += nanoseconds }

    /// Milliseconds per whole step, over `count` steps.
    func stepMilliseconds(perStep count: Int) -> Double { Double(steps) / 1e6 / Double(max(count, 1)) }

    /// Times `body`, after a barrier when `lineUpFirst`.
    mutating func time(lineUpFirst: Bool, _ communicator: any Communicator, _ body: () -> Void) {
        if lineUpFirst { communicator.barrier() }
        let started = DispatchTime.now().uptimeNanoseconds
        body()
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        total += elapsed
        if lineUpFirst {
            sampled += elapsed
            samples += 1
        }
    }

    /// Times `body`, the second collective of the same sum (a sharded
    /// update's all-gather), into the same step: `sampled` when the step's
    /// first collective was lined up.
    mutating func timeContinuing(sampled: Bool, _ body: () -> Void) {
        let started = DispatchTime.now().uptimeNanoseconds
        body()
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        total += elapsed
        if sampled { self.sampled += elapsed }
    }

    /// Mean milliseconds of the lined-up allreduces (nil when none ran).
    var sampledMilliseconds: Double? { samples > 0 ? Double(sampled) / 1e6 / Double(samples) : nil }

    /// Milliseconds in the call per step, over `steps` steps.
    func milliseconds(perStep steps: Int) -> Double { Double(total) / 1e6 / Double(max(steps, 1)) }
}
