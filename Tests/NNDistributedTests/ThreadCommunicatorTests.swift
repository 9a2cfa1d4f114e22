// The in-process world: MPI's collective semantics on threads, and failures
// that end a test instead of hanging it.
//
// Every world runs inside `withDeadline`, so a deadlock fails the test after 10 s
// instead of hanging the suite.

import Foundation
import XCTest
import NNCore
import NNDistributed

final class ThreadCommunicatorTests: XCTestCase {
    struct Boom: Error, Equatable { let rank: Int }
    struct Consequence: Error {}

    // MARK: - Properties

    func testRanksSeeTheirIndexAndResultsComeBackInRankOrder() throws {
        let seen = try withDeadline { try ThreadCommunicator.run(ranks: 3) { c in
            [c.rank, c.size, c.localRank, c.localSize]
        } }
        XCTAssertEqual(seen, [[0, 3, 0, 3], [1, 3, 1, 3], [2, 3, 2, 3]])
        XCTAssertEqual(try withDeadline { try ThreadCommunicator.run(ranks: 3) { $0.name } }, Array(repeating: "in-process, 3 ranks", count: 3))
        XCTAssertEqual(try withDeadline { try ThreadCommunicator.run(ranks: 1) { $0.name } }, ["in-process, 1 rank"])
    }

    // MARK: - Collectives

    func testAllReduceEqualsTheSerialRankOrderSumBitwiseOnEveryRank() throws {
        let ranks = 5, count = 1000
        let results = try withDeadline { try ThreadCommunicator.run(ranks: ranks) { c -> ([UInt32], [UInt64]) in
            var floats = Self.values(rank: c.rank, count: count).map(Float.init)
            var doubles = Self.values(rank: c.rank, count: count)
            floats.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            doubles.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            return (floats.map(\.bitPattern), doubles.map(\.bitPattern))
        } }
        // The documented order: ((x₀ + x₁) + x₂) + … in the buffer's own type.
        var floatSum = Self.values(rank: 0, count: count).map(Float.init)
        var doubleSum = Self.values(rank: 0, count: count)
        for rank in 1..<ranks {
            let next = Self.values(rank: rank, count: count)
            for i in 0..<count {
                floatSum[i] += Float(next[i])
                doubleSum[i] += next[i]
            }
        }
        for (rank, (floats, doubles)) in results.enumerated() {
            XCTAssertEqual(floats, floatSum.map(\.bitPattern), "Float sum on rank \(rank)")
            XCTAssertEqual(doubles, doubleSum.map(\.bitPattern), "Double sum on rank \(rank)")
        }
    }

    /// A reduce-scatter leaves each rank its part of the allreduce's sum
    /// (the same bits), and an all-gather of the parts rebuilds the whole sum
    /// everywhere; an empty part is allowed.
    func testReduceScatterThenAllGatherIsTheAllreduce() throws {
        let ranks = 3, count = 40
        let parts = [0..<16, 16..<40, 40..<40]
        let results = try withDeadline { try ThreadCommunicator.run(ranks: ranks) { c -> ([Float], [Float], [Float]) in
            var whole = Self.values(rank: c.rank, count: count).map(Float.init)
            var scattered = whole
            whole.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            scattered.withUnsafeMutableBufferPointer { c.reduceScatterSum($0, parts: parts) }
            let own = Array(scattered[parts[c.rank]])
            scattered.withUnsafeMutableBufferPointer { c.allGather($0, parts: parts) }
            return (whole, own, scattered)
        } }
        for (rank, (whole, own, gathered)) in results.enumerated() {
            XCTAssertEqual(own.map(\.bitPattern), whole[parts[rank]].map(\.bitPattern), "rank \(rank)'s part")
            XCTAssertEqual(gathered.map(\.bitPattern), whole.map(\.bitPattern), "rank \(rank) after the all-gather")
        }
        XCTAssertNotEqual(results[0].0, Self.values(rank: 0, count: count).map(Float.init), "the sum is not one rank's values")
    }

    func testAllReduceAddsInRankOrder() throws {
        // In Float, (1e8 + 1) − 1e8 is 0 while (1e8 − 1e8) + 1 is 1.
        let contributions: [Float] = [1e8, 1, -1e8]
        let sums = try withDeadline { try ThreadCommunicator.run(ranks: 3) { c -> Float in
            var value = [contributions[c.rank]]
            value.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            return value[0]
        } }
        XCTAssertEqual(sums, [0, 0, 0])
    }

    func testBroadcastFromANonZeroRoot() throws {
        let received = try withDeadline { try ThreadCommunicator.run(ranks: 4) { c -> ([Float], [UInt8]) in
            var values = [Float](repeating: Float(c.rank), count: 5)
            c.broadcast(&values, root: 2)
            // Byte strings of different lengths: only the root's counts.
            let bytes = c.broadcast(bytes: c.rank == 3 ? Array("from three".utf8) : [UInt8(c.rank)], root: 3)
            return (values, bytes)
        } }
        for (rank, (values, bytes)) in received.enumerated() {
            XCTAssertEqual(values, [Float](repeating: 2, count: 5), "rank \(rank)")
            XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "from three", "rank \(rank)")
        }
    }

    func testAllGatherIsIndexedByRank() throws {
        let gathered = try withDeadline { try ThreadCommunicator.run(ranks: 4) { c in c.allGather(UInt64(100 + 7 * c.rank)) } }
        XCTAssertEqual(gathered, Array(repeating: [100, 107, 114, 121], count: 4))
    }

    func testBarrierHoldsEveryRankUntilTheLastArrives() throws {
        // Each rank in turn dawdles before the barrier; no rank may pass it
        // before the dawdler has logged its arrival.
        for late in 0..<4 {
            let log = Log<(event: String, rank: Int, time: UInt64)>()
            _ = try withDeadline { try ThreadCommunicator.run(ranks: 4) { c in
                if c.rank == late {
                    Thread.sleep(forTimeInterval: 0.02)
                    log.append(("arrive", c.rank, DispatchTime.now().uptimeNanoseconds))
                }
                c.barrier()
                log.append(("pass", c.rank, DispatchTime.now().uptimeNanoseconds))
            } }
            let events = log.items
            XCTAssertEqual(events.count, 5)
            XCTAssertEqual(events.first?.event, "arrive", "late rank \(late): \(events.map(\.event))")
            let arrival = events.first { $0.event == "arrive" }!.time
            for pass in events where pass.event == "pass" {
                XCTAssertGreaterThanOrEqual(pass.time, arrival, "rank \(pass.rank) passed before rank \(late) arrived")
            }
        }
    }

    func testManyConsecutiveCollectivesOfMixedKindsDoNotMix() throws {
        // A pseudo-random sequence, the same on every rank, so that equal and
        // different kinds follow each other.
        let ranks = 4, rounds = 1000
        let problems = try withDeadline { try ThreadCommunicator.run(ranks: ranks) { c -> [String] in
            var problems: [String] = []
            var state: UInt64 = 12345
            for round in 0..<rounds {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let r = UInt64(round)
                switch (state >> 33) % 5 {
                case 0:
                    var values = [Double(round), Double(c.rank)]
                    values.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
                    if values != [Double(ranks * round), 6] { problems.append("round \(round): Double sum \(values)") }
                case 1:
                    var values = [Float(round % 100)]
                    values.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
                    if values != [Float(ranks * (round % 100))] { problems.append("round \(round): Float sum \(values)") }
                case 2:
                    let root = round % ranks
                    var value: UInt64 = c.rank == root ? r * 1000 + UInt64(root) : .max
                    withUnsafeMutableBytes(of: &value) { c.broadcast($0, root: root) }
                    if value != r * 1000 + UInt64(root) { problems.append("round \(round): broadcast \(value)") }
                case 3:
                    let all = c.allGather(r * 10 + UInt64(c.rank))
                    if all != (0..<UInt64(ranks)).map({ r * 10 + $0 }) { problems.append("round \(round): gather \(all)") }
                default:
                    c.barrier()
                }
            }
            return problems
        } }
        XCTAssertEqual(problems, Array(repeating: [], count: ranks))
    }

    func testAWorldOfOne() throws {
        let result = try withDeadline { try ThreadCommunicator.run(ranks: 1) { c -> [Double] in
            var doubles = [1.5, -2]
            doubles.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            var floats: [Float] = [3]
            floats.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            c.broadcast(&floats, root: 0)
            c.barrier()
            c.finalize()
            return doubles + floats.map(Double.init) + c.allGather(9).map { Double($0) }
        } }
        XCTAssertEqual(result, [[1.5, -2, 3, 9]])
    }

    // MARK: - Failures

    func testAThrowingRankReleasesRanksWaitingInACollective() throws {
        let seen = Log<(rank: Int, value: Double, gathered: [UInt64], failed: Bool)>()
        XCTAssertThrowsError(try withDeadline { try ThreadCommunicator.run(ranks: 3) { c in
            if c.rank == 1 {
                // Let the others reach the allreduce and wait there first.
                Thread.sleep(forTimeInterval: 0.05)
                throw Boom(rank: 1)
            }
            var value = [42.0]
            value.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            let gathered = c.allGather(5)
            seen.append((c.rank, value[0], gathered, c.world.hasFailed))
            // Later collectives return at once too, so a training loop ends.
            for _ in 0..<100 { c.barrier() }
        } }) { XCTAssertEqual($0 as? Boom, Boom(rank: 1)) }
        let released = seen.items.sorted { $0.rank < $1.rank }
        XCTAssertEqual(released.map(\.rank), [0, 2])
        XCTAssertEqual(released.map(\.value), [42, 42], "a released allreduce leaves its buffer unchanged")
        XCTAssertEqual(released.map(\.gathered), [[5, 0, 0], [0, 0, 5]], "a released allGather knows only its own value")
        XCTAssertEqual(released.map(\.failed), [true, true])
    }

    func testTheOriginalErrorIsReportedNotItsConsequences() throws {
        // Ranks 0 and 1 find the sum wrong after being released and throw
        // too; the report names rank 2's error, which caused theirs.
        XCTAssertThrowsError(try withDeadline { try ThreadCommunicator.run(ranks: 3) { c in
            if c.rank == 2 { throw Boom(rank: 2) }
            var value = [1.0]
            value.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            if value != [3] { throw Consequence() }
        } }) { XCTAssertEqual($0 as? Boom, Boom(rank: 2)) }
    }

    func testARankThatSkipsACollectiveIsReported() throws {
        // The classic bug: a reduction only the coordinator performs.
        XCTAssertThrowsError(try withDeadline { try ThreadCommunicator.run(ranks: 2) { c in
            var value = [1.0]
            value.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            if c.isCoordinator { value.withUnsafeMutableBufferPointer { c.allReduceSum($0) } }
        } }) {
            XCTAssertEqual($0 as? CollectiveMismatch, .rankReturned(rank: 1, collective: .allReduceSumDouble))
        }
    }

    func testRanksInDifferentCollectivesAreReported() throws {
        XCTAssertThrowsError(try withDeadline { try ThreadCommunicator.run(ranks: 2) { c in
            if c.rank == 0 {
                var value: UInt64 = 7
                withUnsafeMutableBytes(of: &value) { c.broadcast($0, root: 0) }
            } else {
                c.barrier()
            }
        } }) { error in
            guard case let .differentCollectives(_, entered, waiting)? = error as? CollectiveMismatch else {
                return XCTFail("expected different collectives, got \(error)")
            }
            XCTAssertEqual(Set([entered, waiting].map(\.rawValue)), ["broadcast", "barrier"])
            XCTAssertTrue("\(error)".contains("while other ranks wait in"))
        }
    }

    // MARK: - Faults

    /// What a test of summed values would check: every rank holds the true
    /// sum, and all ranks agree. Empty when the allreduce is right.
    func allReduceProblems(fault: AllReduceFault?) throws -> [String] {
        let sums = try withDeadline { try ThreadCommunicator.run(ranks: 3, fault: fault) { c -> [Double] in
            var doubles = [Double(c.rank + 1), 10 * Double(c.rank + 1)]
            doubles.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            var floats = [Float(c.rank + 1)]
            floats.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
            return doubles + floats.map(Double.init)
        } }
        var problems: [String] = []
        for (rank, sum) in sums.enumerated() where sum != [6, 60, 6] { problems.append("rank \(rank) holds \(sum)") }
        if Set(sums).count != 1 { problems.append("ranks disagree") }
        return problems
    }

    func testAWrongAllReduceIsCaughtByACheckThatPassesWithTheRightOne() throws {
        XCTAssertEqual(try allReduceProblems(fault: nil), [])
        XCTAssertEqual(try allReduceProblems(fault: .dropContribution(ofRank: 1)),
                       ["rank 0 holds [4.0, 40.0, 4.0]", "rank 1 holds [4.0, 40.0, 4.0]", "rank 2 holds [4.0, 40.0, 4.0]"])
        XCTAssertEqual(try allReduceProblems(fault: .perturbResult(ofRank: 2, by: 0.5)),
                       ["rank 2 holds [6.5, 60.5, 6.5]", "ranks disagree"])
        // A fault can strike one allreduce only: here the second (the Float one).
        let second = AllReduceFault(stage: .contribution) { call, _, value in call == 1 ? 2 * value : value }
        XCTAssertEqual(try allReduceProblems(fault: second).first, "rank 0 holds [6.0, 60.0, 12.0]")
    }

    // MARK: - Gradient reducers

    func testHostGradientReducerSumsAcrossThreadRanks() throws {
        let results = try withDeadline { try ThreadCommunicator.run(ranks: 3) { c -> (Bool, String, [Float]) in
            let cpu = Self.makeCPU()
            let gradients = cpu.tensor((0..<6).map { Float(c.rank * 10 + $0) }, rows: 2, columns: 3)
            let reducer = makeGradientReducer(communicator: c, accelerator: cpu, count: gradients.count)
            reducer.sum(gradients)
            return (reducer is HostGradientReducer, reducer.name, cpu.values(gradients))
        } }
        // (0 + 10 + 20) + 3i for element i.
        for (isHost, name, values) in results {
            XCTAssertTrue(isHost)
            XCTAssertEqual(name, "allreduce on host memory")
            XCTAssertEqual(values, [30, 33, 36, 39, 42, 45])
        }
        let single = try withDeadline { try ThreadCommunicator.run(ranks: 1) { c in
            makeGradientReducer(communicator: c, accelerator: Self.makeCPU(), count: 1) is LocalGradientReducer
        } }
        XCTAssertEqual(single, [true])
    }

    // MARK: - Helpers

    /// Values spread over many magnitudes and both signs, so that a sum in
    /// another order would round differently.
    static func values(rank: Int, count: Int) -> [Double] {
        var state = UInt64(rank + 1) &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let unit = Double(state >> 11) / Double(1 << 53) - 0.5
            return unit * pow(10, Double((state >> 3) % 12) - 4)
        }
    }

    private static let cpuLock = NSLock()

    /// A one-thread CPU accelerator. Its initializer sets OpenBLAS's global
    /// thread count, so ranks create theirs one at a time.
    static func makeCPU() -> CPUAccelerator {
        cpuLock.lock()
        defer { cpuLock.unlock() }
        return CPUAccelerator(threads: 1)
    }

    /// Runs `body` on a thread of its own and returns its result or
    /// rethrows its error. When it has not finished within `seconds`, the
    /// test fails and `TimedOut` is thrown (the hung thread is left behind).
    func withDeadline<T>(_ seconds: Double = 10, file: StaticString = #filePath, line: UInt = #line,
                         _ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = Log<Result<T, any Error>>()
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.append(Result(catching: body))
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + seconds) == .success else {
            XCTFail("not finished after \(seconds) s: a rank is hung", file: file, line: line)
            throw TimedOut()
        }
        return try result.items[0].get()
    }

    struct TimedOut: Error {}
}

/// Items appended from several threads, read after they have finished.
final class Log<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element] = []

    func append(_ item: Element) {
        lock.lock()
        storage.append(item)
        lock.unlock()
    }

    var items: [Element] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
