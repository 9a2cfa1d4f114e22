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
        precondition(ranks > 0 && count >= 0 && alignment > 0)
        let share = (count + ranks - 1) / ranks
        let size = (share + alignment - 1) / alignment * alignment
        parts = (0..<ranks).map { rank in
            let start = min(rank * size, count)
            return start..<min(start + size, count)
        }
    }
}

/// Whether the optimizer update is sharded in a run, and why: run.json's `optimizer_sharding`.
public struct ShardingRecord: Equatable, Sendable {
    public enum Source: String, Sendable {
        /// `--shard-optimizer auto` on a run it applies to.
        case auto
        /// `--shard-optimizer on|off`.
        case flag
        /// Sharding cannot apply (`detail` says why).
        case inapplicable
    }

    public var sharded: Bool
    public var source: Source
    public var detail: String?
    /// Parameters each rank updates (the largest part), when sharded.
    public var partSize: Int?

    public init(sharded: Bool, source: Source, detail: String? = nil, partSize: Int? = nil) {
        self.sharded = sharded
        self.source = source
        self.detail = detail
        self.partSize = partSize
    }

    /// run.json's `optimizer_sharding` object.
    var json: [String: Any] {
        ["sharded": sharded, "source": source.rawValue, "detail": detail ?? NSNull(), "part_size": partSize ?? NSNull()]
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

    /// The fewest parameters `auto` shards: the update costs about 1 ns a
    /// parameter on one core (Adam, 235,146 parameters: 0.25 ms), and
    /// sharding adds a small all-gather (the finite guard's records) to each
    /// step, tens of microseconds on one host; below this the update saved
    /// is no larger than that.
    public static let shardingMinimum = 65_536

    /// Settles, before the first step and before the overlap, whether the
    /// update is sharded (collective: every rank calls it with the same
    /// request). `auto` shards wherever it applies and the model has at
    /// least `shardingMinimum` parameters; `on` shards wherever it applies,
    /// and is an error where it cannot. Nil with one rank.
    public func settleSharding(_ request: ShardingRequest) throws -> ShardingRecord? {
        guard communicator.size > 1 else {
            if request == .on { throw UserError("--shard-optimizer on: there is one rank, so there is nothing to shard") }
            return nil
        }
        if let problem = shardingProblem {
            if request == .on { throw UserError("--shard-optimizer on: cannot shard the update here: \(problem); use auto or off") }
            return ShardingRecord(sharded: false, source: .inapplicable, detail: problem)
        }
        if request == .off {
            sharding = nil
            return ShardingRecord(sharded: false, source: .flag, detail: "--shard-optimizer off")
        }
        if request == .auto && model.parameterCount < Self.shardingMinimum {
            return ShardingRecord(sharded: false, source: .auto,
                                  detail: "\(model.parameterCount) parameters, fewer than the \(Self.shardingMinimum) worth sharding")
        }
        let made = OptimizerSharding(count: model.parameterCount, ranks: communicator.size)
        sharding = made
        return ShardingRecord(sharded: true, source: request == .on ? .flag : .auto,
                              detail: request == .on ? "--shard-optimizer on" : nil,
                              partSize: made.parts.map(\.count).max())
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
