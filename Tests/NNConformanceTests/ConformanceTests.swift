// The conformance suite itself: it passes for identical backends, covers
// every op of the contract, and fails for a wrong backend, only on the op
// that is wrong. (CUDA against the CPU runs in NNCUDATests.)

import XCTest
import NNCore
import NNConformance

final class ConformanceTests: XCTestCase {
    /// The operations of the `Accelerator` contract that the suite must check
    /// (allocate is used by every check, and the host-buffer copy is a "copy").
    static let operations: Set<String> = [
        "copy", "fill", "gemm", "addBias", "sumRows", "multiply", "activate", "activationBackward",
        "softmaxCrossEntropy", "sigmoidBinaryCrossEntropy", "squaredError", "dropout", "addPenalty", "update",
        "checkFinite",
    ]

    func testCPUAgainstCPUPassesAndCoversEveryOp() {
        let results = Conformance.run(CPUAccelerator(threads: 1), reference: CPUAccelerator(threads: 1), seed: 7)
        print(Conformance.report(results))
        XCTAssertEqual(Set(results.map(\.operation)), Self.operations)
        XCTAssertEqual(Set(results.map(\.name)).count, results.count, "check names are unique")
        XCTAssertGreaterThan(results.count, 250)
        for result in results where !result.passed { XCTFail(result.description) }
        XCTAssertEqual(results.map(\.maxRelativeError).max(), 0, "identical backends agree bit for bit")
    }

    func testAWrongMultiplyFailsExactlyTheMultiplyChecks() {
        let wrong = PerturbedAccelerator()
        wrong.multiplyError = 1e-3
        let results = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 11)
        let failed = Set(results.filter { !$0.passed }.map(\.name))
        let multiply = Set(results.filter { $0.operation == "multiply" }.map(\.name))
        XCTAssertFalse(multiply.isEmpty)
        XCTAssertEqual(failed, multiply, Conformance.report(results))
    }

    func testTheToleranceSitsBetweenFloatNoiseAndRealErrors() {
        let slightlyOff = PerturbedAccelerator()
        slightlyOff.multiplyError = 2e-5  // a few float ulps of rounding difference: accepted
        XCTAssertTrue(Conformance.run(slightlyOff, reference: CPUAccelerator(threads: 1), seed: 3).allSatisfy(\.passed))

        let wrong = PerturbedAccelerator()
        wrong.multiplyError = 3e-4  // three times rtol: rejected
        let failed = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 3).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        XCTAssertTrue(failed.allSatisfy { $0.operation == "multiply" && $0.maxRelativeError > Conformance.relativeTolerance })
    }

    func testAWriteOutsideTheViewIsCaught() {
        let wrong = PerturbedAccelerator()
        wrong.addBiasWritesPastTheEnd = true
        let failed = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 5).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        for result in failed {
            XCTAssertEqual(result.operation, "addBias")
            XCTAssertTrue(result.detail.contains("guard value 0 outside the view"), result.detail)
        }
    }

    func testADifferentDropoutMaskFailsExactly() {
        let wrong = PerturbedAccelerator()
        wrong.dropoutKeyOffset = 1
        let failed = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 9).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        XCTAssertTrue(failed.allSatisfy { $0.operation == "dropout" && $0.detail.contains("must be exact") },
                      failed.map(\.description).joined(separator: "\n"))
    }

    func testAWrongEmptyProductIsCaught() {
        // gemm with K = 0 must still scale C by β: a backend that skips it fails only those checks.
        let wrong = PerturbedAccelerator()
        wrong.sumRowsIgnoresBeta = true
        let failed = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 13).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        XCTAssertTrue(failed.allSatisfy { ($0.operation == "gemm" && $0.name.contains("k=0")) || $0.operation == "sumRows" },
                      failed.map(\.description).joined(separator: "\n"))
        XCTAssertTrue(failed.contains { $0.operation == "gemm" }, "the empty product goes through sumRows")
    }
}
