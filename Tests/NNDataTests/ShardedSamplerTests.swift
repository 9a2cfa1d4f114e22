import NNData
import XCTest

final class ShardedSamplerTests: XCTestCase {
    func testOrderIsADeterministicPermutation() {
        let sampler = ShardedSampler(sampleCount: 257, globalBatchSize: 32, seed: 7)
        let first = sampler.order(epoch: 0)
        XCTAssertEqual(first.sorted(), (0..<257).map { Int32($0) })
        XCTAssertEqual(first, sampler.order(epoch: 0))
        XCTAssertEqual(first, ShardedSampler(sampleCount: 257, globalBatchSize: 8, seed: 7).order(epoch: 0))
        XCTAssertNotEqual(first, sampler.order(epoch: 1))
        XCTAssertNotEqual(first, ShardedSampler(sampleCount: 257, globalBatchSize: 32, seed: 8).order(epoch: 0))
        XCTAssertNotEqual(first, (0..<257).map { Int32($0) })
        let plain = ShardedSampler(sampleCount: 5, globalBatchSize: 2, seed: 7, shuffle: false)
        XCTAssertEqual(plain.order(epoch: 3), [0, 1, 2, 3, 4])
    }

    func testGlobalBatches() {
        let sampler = ShardedSampler(sampleCount: 10, globalBatchSize: 4, seed: 0)
        XCTAssertEqual(sampler.stepsPerEpoch, 3)
        XCTAssertEqual((0..<3).map { sampler.globalBatch(step: $0) }, [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(ShardedSampler(sampleCount: 8, globalBatchSize: 4, seed: 0).stepsPerEpoch, 2)
        XCTAssertEqual(ShardedSampler(sampleCount: 0, globalBatchSize: 4, seed: 0).stepsPerEpoch, 0)
        XCTAssertEqual(ShardedSampler(sampleCount: 3, globalBatchSize: 100, seed: 0).globalBatch(step: 0), 0..<3)
    }

    func testLocalBatchesPartitionEveryGlobalBatch() {
        for (n, b) in [(10, 4), (1, 1), (7, 3), (100, 16), (5, 8), (13, 5)] {
            let sampler = ShardedSampler(sampleCount: n, globalBatchSize: b, seed: 1)
            var covered: [Int] = []
            for step in 0..<sampler.stepsPerEpoch {
                let global = sampler.globalBatch(step: step)
                for worldSize in 1...5 {
                    var positions: [Int] = []
                    var previousEnd = global.lowerBound
                    for rank in 0..<worldSize {
                        let local = sampler.localBatch(step: step, rank: rank, worldSize: worldSize)
                        XCTAssertEqual(local.lowerBound, previousEnd, "contiguous, in rank order")
                        XCTAssertLessThanOrEqual(local.count, (global.count + worldSize - 1) / worldSize)
                        previousEnd = local.upperBound
                        positions += Array(local)
                    }
                    XCTAssertEqual(positions, Array(global), "N \(n) B \(b) p \(worldSize) step \(step)")
                }
                covered += Array(global)
            }
            XCTAssertEqual(covered, Array(0..<n))
        }
        let awkward = ShardedSampler(sampleCount: 10, globalBatchSize: 4, seed: 0)
        XCTAssertEqual((0..<3).map { awkward.localBatch(step: 2, rank: $0, worldSize: 3) }, [8..<8, 8..<9, 9..<10])
        XCTAssertEqual((0..<3).map { awkward.localBatch(step: 0, rank: $0, worldSize: 3) }, [0..<1, 1..<2, 2..<4])
    }

    func testShardCoversEverything() {
        for n in [0, 1, 2, 9, 10, 1001] {
            for p in 1...5 {
                let shards = (0..<p).map { ShardedSampler.shard(count: n, rank: $0, worldSize: p) }
                XCTAssertEqual(shards.flatMap { Array($0) }, Array(0..<n))
                XCTAssert(shards.allSatisfy { $0.count == n / p || $0.count == n / p + 1 })
            }
        }
    }
}
