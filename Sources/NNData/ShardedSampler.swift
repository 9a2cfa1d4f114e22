// Which samples each rank trains on at each step. Everything derives from
// (seed, epoch, step, rank, world size), so every rank can compute every other
// rank's shard and a resumed run sees exactly the batches it would have.
//
// N = samples, B = global batch size, R = the size of one global batch
// (B, or less for the last one), p = world size, r = rank.

import NNCore

/// Deterministic shuffling and batch sharding for data-parallel training.
public struct ShardedSampler: Sendable {
    /// N.
    public let sampleCount: Int
    /// B: samples per step over all ranks together.
    public let globalBatchSize: Int
    /// Seeds the per-epoch shuffles.
    public let seed: UInt64
    /// Whether epochs are shuffled (identity order otherwise).
    public let shuffle: Bool

    /// Creates a sampler for `sampleCount` samples and global batches of `globalBatchSize`.
    public init(sampleCount: Int, globalBatchSize: Int, seed: UInt64, shuffle: Bool = true) {
        precondition(sampleCount >= 0, "negative sample count")
        precondition(globalBatchSize >= 1, "the global batch size must be at least 1")
        self.sampleCount = sampleCount
        self.globalBatchSize = globalBatchSize
        self.seed = seed
        self.shuffle = shuffle
    }

    /// ⌈N / B⌉: the last global batch may be short; it is still split over
    /// all ranks, so every rank takes the same number of steps.
    public var stepsPerEpoch: Int { (sampleCount + globalBatchSize - 1) / globalBatchSize }

    /// The epoch's order of sample indices: a permutation drawn from
    /// (seed, `.shuffle`, epoch), or the identity when not shuffling.
    public func order(epoch: Int) -> [Int32] {
        guard shuffle else { return (0..<Int32(sampleCount)).map { $0 } }
        var random = RandomStream(key: randomKey(seed: seed, purpose: .shuffle, UInt64(epoch)))
        return random.permutation(sampleCount)
    }

    /// Positions [step·B, min((step+1)·B, N)) in the epoch order.
    public func globalBatch(step: Int) -> Range<Int> {
        let start = min(step * globalBatchSize, sampleCount)
        return start..<min(start + globalBatchSize, sampleCount)
    }

    /// Rank r's contiguous slice of the global batch: [start + ⌊r·R/p⌋,
    /// start + ⌊(r+1)·R/p⌋). The slices of all ranks are disjoint and cover
    /// the global batch; a slice is empty when R < p for some ranks.
    public func localBatch(step: Int, rank: Int, worldSize: Int) -> Range<Int> {
        let global = globalBatch(step: step)
        let slice = Self.shard(count: global.count, rank: rank, worldSize: worldSize)
        return global.lowerBound + slice.lowerBound..<global.lowerBound + slice.upperBound
    }

    /// Rank r's share [⌊r·N/p⌋, ⌊(r+1)·N/p⌋) of `count` items, for sharded evaluation.
    public static func shard(count: Int, rank: Int, worldSize: Int) -> Range<Int> {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize, "rank \(rank) outside a world of \(worldSize)")
        return rank * count / worldSize..<(rank + 1) * count / worldSize
    }
}
