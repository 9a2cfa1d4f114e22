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

    /// What `started` reports.
    var summary: RunStart {
        RunStart(config: config, trainingSamples: data.training.count, validationSamples: data.validation?.count,
                 testSamples: data.test?.count, featureCount: data.featureCount, parameterCount: model.parameterCount,
                 accelerator: accelerator.name, communicator: communicator.name, gradientReduction: reducer.name,
                 worldSize: communicator.size, resumedAt: resumedAt, runDirectory: store?.directory ?? "")
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
    private var total: UInt64 = 0, sampled: UInt64 = 0, samples = 0

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

    /// Mean milliseconds of the lined-up allreduces (nil when none ran).
    var sampledMilliseconds: Double? { samples > 0 ? Double(sampled) / 1e6 / Double(samples) : nil }

    /// Milliseconds in the call per step, over `steps` steps.
    func milliseconds(perStep steps: Int) -> Double { Double(total) / 1e6 / Double(max(steps, 1)) }
}
