import NNDistributed
import XCTest
@testable import NNTrainApp

final class HostLoadTests: XCTestCase {
    func testAnUnboundRankCountsTheCoresItMayRunOn() {
        // mpirun --bind-to none, or a taskset / cpuset the ranks inherit.
        XCTAssertEqual(HostLoad.cores(allowed: 2, online: 2, boundByLauncher: false), 2)
        XCTAssertEqual(HostLoad.cores(allowed: 1, online: 2, boundByLauncher: false), 1)
        XCTAssertEqual(HostLoad.cores(allowed: 0, online: 2, boundByLauncher: false), 1)
    }

    func testCPUListsAndTheirUnion() {
        XCTAssertEqual(HostLoad.cpus(list: "0-3,8,10-11"), [0, 1, 2, 3, 8, 10, 11])
        XCTAssertEqual(HostLoad.cpus(list: "1"), [1])
        for bad in ["", "a", "3-1", "1-2-3", "-1", "0,,x"] { XCTAssertNil(HostLoad.cpus(list: bad), bad) }
        XCTAssertEqual(HostLoad.mask([0, 1, 65]), [3, 2])
        // Two ranks bound to a core each share a host of 2; a taskset of one core stays 1.
        XCTAssertEqual(HostLoad.cores([HostLoad.mask([0]), HostLoad.mask([1])]), 2)
        XCTAssertEqual(HostLoad.cores([HostLoad.mask([0]), HostLoad.mask([0]), HostLoad.mask([0])]), 1)
        XCTAssertEqual(HostLoad.cores([HostLoad.mask([0, 1]), HostLoad.mask([64, 127])]), 4)
        XCTAssertEqual(HostLoad.cores([]), 0)
        XCTAssertEqual(HostLoad.measure(LocalCommunicator(), nodes: [0], allowedCPUs: [2, 5]), HostLoad(ranks: 1, cores: 2))
    }

    func testABoundRankGuessesTheHostsOnlineCoresBeforeMPIStarts() {
        // Open MPI binds -n 2 to one core each: a rank sees 1, the host has 2.
        XCTAssertEqual(HostLoad.cores(allowed: 1, online: 2, boundByLauncher: true), 2)
        XCTAssertEqual(HostLoad.cores(allowed: 4, online: 2, boundByLauncher: true), 4)
    }

    func testMoreRanksThanCoresIsOversubscribedAndSaysSoOnce() throws {
        let four = HostLoad(ranks: 4, cores: 2)
        XCTAssertTrue(four.isOversubscribed)
        let note = try XCTUnwrap(four.note)
        XCTAssertEqual(note, "this host is oversubscribed: 4 ranks on 2 cores; waiting ranks yield their core and BLAS runs 1 thread per rank")
        XCTAssertFalse(note.contains("\n"))
        XCTAssertTrue(try XCTUnwrap(HostLoad(ranks: 2, cores: 1).note).contains("2 ranks on 1 core;"))
        for load in [HostLoad(ranks: 2, cores: 2), HostLoad(ranks: 1, cores: 1), HostLoad(ranks: 1, cores: 64)] {
            XCTAssertFalse(load.isOversubscribed, "\(load)")
            XCTAssertNil(load.note)
        }
    }

    func testOversubscribedRanksRunOneBLASThread() throws {
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] != nil { throw XCTSkip("OPENBLAS_NUM_THREADS is set") }
        XCTAssertEqual(Environment.blasThreads(localRanks: 4, oversubscribed: true).count, 1)
        XCTAssertEqual(Environment.blasThreads(localRanks: 1).count, max(1, ProcessInfo.processInfo.activeProcessorCount))
    }

    func testAYieldingRankWinsTheAgreementOnTheWait() {
        XCTAssertLessThan(CollectiveWait.blocking.kind, CollectiveWait.yielding(.yieldOnly).kind)
        XCTAssertEqual(CollectiveWait.yielding(.sleeping).kind, CollectiveWait.yielding(.yieldOnly).kind)
        XCTAssertEqual(CollectiveWait.Backoff(first: 50, longest: 10).longest, 50)
    }
}
