// The rules of an allreduce measurement, without MPI: how many calls are
// timed, how ranks' timings combine, which algorithm wins.

import XCTest
import NNDistributed

final class AllreduceTuningTests: XCTestCase {
    private func timings(_ seconds: [Double]) -> [AllreduceTiming] {
        seconds.enumerated().map { AllreduceTiming(algorithm: $0.offset + 1, seconds: $0.element, iterations: 10) }
    }

    func testEachAlgorithmCountsAtItsSlowestRank() {
        let perRank: [[Double]] = [[4, 1, 9, 2, 5, 3],
                                   [1, 7, 2, 2, 6, 3],
                                   [2, 2, 3, 8, 1, 3]]
        XCTAssertEqual(AllreduceTuning.slowestRank(perRank), [4, 7, 9, 8, 6, 3])
        XCTAssertEqual(AllreduceTuning.slowestRank([[1, 2]]), [1, 2])
        XCTAssertEqual(AllreduceTuning.slowestRank([]), [])
        // Fastest on every rank alone is not fastest overall: algorithm 6 wins on the maxima.
        XCTAssertEqual(AllreduceTuning.fastest(timings(AllreduceTuning.slowestRank(perRank))), 6)
    }

    func testTheFastestWinsAndATieGoesToTheLowerNumber() {
        XCTAssertEqual(AllreduceTuning.fastest(timings([5e-4, 4e-4, 3e-4, 3.5e-4, 6e-4, 7e-4])), 3)
        XCTAssertEqual(AllreduceTuning.fastest(timings([5e-4, 2e-4, 3e-4, 2e-4, 2e-4, 7e-4])), 2)
        // The order timings arrive in does not matter.
        XCTAssertEqual(AllreduceTuning.fastest(timings([9, 2, 9, 2, 9, 9]).reversed()), 2)
    }

    func testNonFiniteTimesNeverWin() {
        XCTAssertEqual(AllreduceTuning.fastest(timings([.nan, 3, .infinity, 2, -.infinity, 4])), 4)
        XCTAssertNil(AllreduceTuning.fastest(timings([.nan, .infinity])))
        XCTAssertNil(AllreduceTuning.fastest([]))
    }

    func testTimedCallsScaleWithTheBufferAndStayInRange() {
        XCTAssertEqual(AllreduceTuning.iterations(callSeconds: 1e-3, budget: 0.2), 200)
        XCTAssertEqual(AllreduceTuning.iterations(callSeconds: 2e-3, budget: 0.2), 100)
        XCTAssertEqual(AllreduceTuning.iterations(callSeconds: 1e-6, budget: 0.2), 200, "at most 200")
        XCTAssertEqual(AllreduceTuning.iterations(callSeconds: 0.5, budget: 0.2), 3, "at least 3")
        XCTAssertEqual(AllreduceTuning.iterations(callSeconds: 0, budget: 0.2), 200)
        XCTAssertEqual(AllreduceTuning.iterations(callSeconds: .nan, budget: 0.2), 200)
        // Six algorithms of a slow buffer stay near the budget: 6 · (3 + warm-ups) calls at most beyond it.
        let slow = 0.05
        XCTAssertLessThanOrEqual(Double(AllreduceTuning.iterations(callSeconds: slow)) * slow, AllreduceTuning.secondsPerAlgorithm + 1e-9)
    }

    func testRoundsShareTheCallsAndTheMedianIgnoresOneBadRound() {
        XCTAssertEqual(AllreduceTuning.callsPerRound(200), 200 / AllreduceTuning.rounds)
        XCTAssertEqual(AllreduceTuning.callsPerRound(3), 1)
        XCTAssertEqual(AllreduceTuning.callsPerRound(1), 1)
        XCTAssertEqual(AllreduceTuning.median([3e-4, 9e-2, 2e-4]), 3e-4)
        XCTAssertEqual(AllreduceTuning.median([4, 1, 3, 2]), 2.5)
        XCTAssertEqual(AllreduceTuning.median([7]), 7)
        XCTAssertEqual(AllreduceTuning.median([]), 0)
    }

    func testAlgorithmsByNumberOrName() {
        XCTAssertEqual(AllreduceTuning.number(named: "4"), 4)
        XCTAssertEqual(AllreduceTuning.number(named: "ring"), 4)
        XCTAssertEqual(AllreduceTuning.number(named: "Recursive-Doubling"), 3)
        XCTAssertEqual(AllreduceTuning.number(named: "recursive_doubling"), 3)
        XCTAssertEqual(AllreduceTuning.number(named: "segmented ring"), 5)
        XCTAssertNil(AllreduceTuning.number(named: "0"))
        XCTAssertNil(AllreduceTuning.number(named: "7"))
        XCTAssertEqual(AllreduceTuning.number(named: "shared-memory"), AllreduceTuning.sharedMemory)
        XCTAssertNil(AllreduceTuning.number(named: String(AllreduceTuning.sharedMemory)), "not one of Open MPI's numbers")
        XCTAssertFalse(AllreduceTuning.openMPINumbers.contains(AllreduceTuning.sharedMemory))
        XCTAssertNil(AllreduceTuning.number(named: "tree"))
        XCTAssertEqual(AllreduceTuning.flagNames,
                       ["basic-linear", "nonoverlapping", "recursive-doubling", "ring", "segmented-ring", "rabenseifner", "shared-memory"])
        XCTAssertEqual(AllreduceTuning.name(6), "rabenseifner")
        XCTAssertEqual(AllreduceTuning.name(9), "algorithm 9")
    }

    func testWorldsWithoutAlgorithmsHaveNothingToTune() {
        XCTAssertNil(LocalCommunicator().tuneAllreduce(count: 100))
        XCTAssertNil(LocalCommunicator().useAllreduceAlgorithm(4))
        let answers = try? ThreadCommunicator.run(ranks: 2) { $0.tuneAllreduce(count: 100) == nil && $0.useAllreduceAlgorithm(4) == nil }
        XCTAssertEqual(answers, [true, true])
    }
}
