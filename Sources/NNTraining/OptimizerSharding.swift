// The optimizer update split over the ranks (ZeRO stage 1, as in DeepSpeed
// or PyTorch's ZeroRedundancyOptimizer). Every rank of a data-parallel job
// would otherwise apply the same update to the whole model: a pass over the
// parameters, gradients and optimizer state that costs the same whatever the
// batch, so it weighs more as ranks share a fixed global batch. Sharded,
// each rank sums only its part of the gradients (a reduce-scatter, half of
// an allreduce), updates that part of the parameters and state, and the
// ranks then copy each other's parts of the parameters (an all-gather, the
// other half). The bytes on the wire are an allreduce's; the update is done
// once per job instead of once per rank.
//
// Each rank keeps the whole optimizer state but advances only its part; the
// parts are gathered before a checkpoint, so checkpoints hold the full state
// and resume on any world size. The update rules are element-wise, and the
// reduce-scatter adds the same values as the allreduce, so with two ranks
// (one addition per value) the parameters are bit-identical to the
// unsharded run's.

import Foundation
import NNCore
import NNDistributed

/// `--shard-optimizer`: shard where it applies (`auto`), insist (`on`), or never (`off`).
public enum ShardingRequest: String, CaseIterable, Sendable {
    case auto, on, off
}

/// Which part of the flat parameter layout each rank updates.
public struct OptimizerSharding: Equatable, Sendable {
    /// Rank r's range of the parameters (consecutive, in rank order, some possibly empty).
    public let parts: [Range<Int>]

    /// `count` values cut into `ranks` consecutive parts of equal size,
    /// rounded up to `alignment` values (64 bytes, so each part starts on a
    /// cache line of its own); the last parts take what is left.
    public init(count: Int, ranks: Int, alignment: Int = 16) {
        parts = consecutiveParts(count: count, ranks: ranks, alignment: alignment)
    }
}

/// Whether the optimizer update is sharded in a run, and why: run.json's `optimizer_sharding`.
public struct ShardingRecord: Equatable, Sendable {
    public enum Source: String, Sendable {
        /// Both ways timed on real batches at start-up; the faster won.
        case measured
        /// The one the run being resumed measured.
        case resumed
        /// `--shard-optimizer on|off`.
        case flag
        /// Fewer parameters than `Trainer.shardingMinimum`: whole, unmeasured.
        case small
        /// Sharding cannot apply (`detail` says why).
        case inapplicable
    }

    public var sharded: Bool
    public var source: Source
    public var detail: String?
    /// Parameters each rank updates (the largest part), when sharded.
    public var partSize: Int?
    /// Mean seconds of one step's gradient pass and update, each way, when measured.
    public var wholeSeconds: Double?, shardedSeconds: Double?

    public init(sharded: Bool, source: Source, detail: String? = nil, partSize: Int? = nil,
                wholeSeconds: Double? = nil, shardedSeconds: Double? = nil) {
        self.sharded = sharded
        self.source = source
        self.detail = detail
        self.partSize = partSize
        self.wholeSeconds = wholeSeconds
        self.shardedSeconds = shardedSeconds
    }

    /// run.json's `optimizer_sharding` object.
    var json: [String: Any] {
        ["sharded": sharded, "source": source.rawValue, "detail": detail ?? NSNull(), "part_size": partSize ?? NSNull(),
         "whole_ms": wholeSeconds.map { $0 * 1000 } ?? NSNull(), "sharded_ms": shardedSeconds.map { $0 * 1000 } ?? NSNull()]
    }

    /// What an earlier start of the run in `runDirectory` measured (or
    /// reused), with the world size it was measured for; nil when run.json holds none.
    public static func measured(inRunDirectory runDirectory: String) -> (sharded: Bool, worldSize: Int)? {
        guard let data = FileManager.default.contents(atPath: runDirectory + "/run.json"),
              let run = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let record = run["optimizer_sharding"] as? [String: Any],
              let source = (record["source"] as? String).flatMap(Source.init(rawValue:)),
              source == .measured || source == .resumed,
              let sharded = record["sharded"] as? Bool,
              let worldSize = run["world_size"] as? Int else { return nil }
        return (sharded, worldSize)
    }
}

extension Trainer {
    /// Why this run cannot shard its optimizer update, or nil when it can.
    var shardingProblem: String? {
        if communicator.size == 1 { return "one rank" }
        if !accelerator.isHostMemory { return "gradients in device memory are summed by the staged allreduce" }
        if config.training.gradientCompression != nil { return "gradient compression sums the whole buffer at once" }
        if config.training.skipLimit != nil { return "on_nonfinite: skip decides on the whole update at once" }
        return nil
    }

    /// The fewest parameters `auto` measures sharding for: the update costs
    /// about 1 ns a parameter on one core (Adam, 235,146 parameters:
    /// 0.25 ms), and sharding adds a small all-gather (the finite guard's
    /// records) to each step, tens of microseconds on one host; below this
    /// the update saved is no larger than that, and the model keeps the
    /// whole update without spending start-up time on a measurement.
    public static let shardingMinimum = 65_536

    /// Settles, before the first step and before the overlap, whether the
    /// update is sharded (collective: every rank calls it with the same
    /// arguments). `auto` times both ways on the run's first batch (see
    /// `timeShardedAndWhole`) and keeps the faster, unless the model has
    /// fewer than `shardingMinimum` parameters or `resumed` (what the run
    /// being resumed chose, for the same world size) says; `on` and `off`
    /// decide without measuring, and `on` where sharding cannot apply is an
    /// error. Nil with one rank.
    public func settleSharding(_ request: ShardingRequest, resumed: Bool? = nil) throws -> ShardingRecord? {
        guard communicator.size > 1 else {
            if request == .on { throw UserError("--shard-optimizer on: there is one rank, so there is nothing to shard") }
            return nil
        }
        if let problem = shardingProblem {
            if request == .on { throw UserError("--shard-optimizer on: cannot shard the update here: \(problem); use auto or off") }
            return ShardingRecord(sharded: false, source: .inapplicable, detail: problem)
        }
        let made = OptimizerSharding(count: model.parameterCount, ranks: communicator.size)
        let partSize = made.parts.map(\.count).max()
        switch request {
        case .off:
            return ShardingRecord(sharded: false, source: .flag, detail: "--shard-optimizer off")
        case .on:
            sharding = made
            return ShardingRecord(sharded: true, source: .flag, detail: "--shard-optimizer on", partSize: partSize)
        case .auto:
            break
        }
        if let resumed {
            if resumed { sharding = made }
            return ShardingRecord(sharded: resumed, source: .resumed, detail: "measured by the run being resumed", partSize: partSize)
        }
        if model.parameterCount < Self.shardingMinimum {
            return ShardingRecord(sharded: false, source: .small,
                                  detail: "\(model.parameterCount) parameters, fewer than the \(Self.shardingMinimum) worth measuring")
        }
        let (whole, sharded) = timeShardedAndWhole(made)
        let faster = sharded < whole
        if faster { sharding = made }
        return ShardingRecord(sharded: faster, source: .measured, partSize: partSize, wholeSeconds: whole, shardedSeconds: sharded)
    }

    /// Seconds of one step's gradient work each way, on the slowest rank
    /// (`timeGradientPasses`): the whole way sums with the reducer and
    /// applies the whole update; the sharded way reduce-scatters, applies
    /// its part, and all-gathers the parameters and the guard records. The
    /// updates are real (a trial that writes nothing would cost less than
    /// an update and favour the whole way), so the parameters, the
    /// optimizer state and its step count are saved first and put back
    /// afterwards, on every rank alike; the guard record is a scratch one.
    func timeShardedAndWhole(_ made: OptimizerSharding) -> (whole: Double, sharded: Double) {
        let scratch = FiniteGuard(accelerator: accelerator)
        let gradients = model.gradients, parameters = model.parameters, count = model.parameterCount
        let whole = reducer, mine = made.parts[communicator.rank]
        let (savedParameters, savedState, savedSteps) = (accelerator.values(parameters), accelerator.values(optimizer.state), optimizer.steps)
        defer {
            savedParameters.withUnsafeBufferPointer { accelerator.copy($0, to: parameters) }
            savedState.withUnsafeBufferPointer { accelerator.copy($0, to: optimizer.state) }
            optimizer.steps = savedSteps
        }
        return timeGradientPasses(
            PassEnding(overlapping: nil) { [self] in
                whole.sum(gradients)
                optimizer.apply(parameters: parameters, gradients: gradients, guardRecord: scratch.tensor, step: 1)
                scratch.clear(accelerator)
            },
            PassEnding(overlapping: nil) { [self] in
                communicator.reduceScatterSum(UnsafeMutableBufferPointer(start: gradients.hostPointer, count: count), parts: made.parts)
                optimizer.apply(parameters: parameters, gradients: gradients, guardRecord: scratch.tensor, step: 1, range: mine)
                scratch.clear(accelerator)
                communicator.allGather(UnsafeMutableBufferPointer(start: parameters.hostPointer, count: count), parts: made.parts)
                agreeOnGuard(made)
            })
    }

    /// The sharded step after backward: this rank's part of the summed
    /// gradients is checked and applied, the parts of the parameters are
    /// gathered, and the ranks agree on the finite guard's record. The
    /// all-gather's time joins the reduce-scatter's in the allreduce
    /// figures (`sampled`: this step's reduce-scatter was lined up).
    func applySharded(_ sharding: OptimizerSharding, step: Int, sampled: Bool) throws {
        let mine = sharding.parts[communicator.rank]
        accelerator.checkFinite(Optimizer.view(model.gradients, mine), step: step, flag: finiteGuard.tensor)
        optimizer.apply(parameters: model.parameters, gradients: model.gradients, guardRecord: finiteGuard.tensor,
                        step: step, range: mine)
        allreduceTimer.timeContinuing(sampled: sampled) {
            communicator.allGather(UnsafeMutableBufferPointer(start: model.parameters.hostPointer, count: model.parameterCount),
                                   parts: sharding.parts)
        }
        agreeOnGuard(sharding)
        try ensureFinite()
    }

    /// Every rank's finite-guard record (each checked only its own part),
    /// merged into one on every rank, in the flat layout's indices: the
    /// gradients' records win over the update's (the gradients are why),
    /// counts add up, and the first index is the lowest.
    func agreeOnGuard(_ sharding: OptimizerSharding) {
        let width = FiniteGuard.width, ranks = communicator.size
        var records = [Float](repeating: 0, count: width * ranks)
        let own = finiteGuard.tensor.hostPointer
        records.withUnsafeMutableBufferPointer { all in
            for i in 0..<width { all[communicator.rank * width + i] = own[i] }
            communicator.allGather(all, parts: (0..<ranks).map { $0 * width..<($0 + 1) * width })
        }
        let found = records.withUnsafeBufferPointer { all in
            (0..<ranks).compactMap { rank -> FiniteGuard.Record? in
                guard var record = FiniteGuard.decode(all.baseAddress! + rank * width) else { return nil }
                record.firstIndex += sharding.parts[rank].lowerBound
                return record
            }
        }
        guard let cause = found.contains(where: { $0.source == .gradients }) ? FiniteGuard.Source.gradients : found.first?.source
        else { return }
        let agreeing = found.filter { $0.source == cause }
        let merged = FiniteGuard.Record(step: agreeing.map(\.step).min()!, count: agreeing.map(\.count).reduce(0, +),
                                        source: cause, firstIndex: agreeing.map(\.firstIndex).min()!)
        FiniteGuard.set(own, merged)
    }

    /// Copies every rank's part of the optimizer state to every rank, so the
    /// state a checkpoint saves is whole (collective; nothing when unsharded).
    func gatherShardedState() {
        guard let sharding else { return }
        for slot in 0..<optimizer.rule.slots.count {
            let row = optimizer.slot(slot)
            communicator.allGather(UnsafeMutableBufferPointer(start: row.hostPointer, count: row.count), parts: sharding.parts)
        }
    }
}
