// The conformance suite passes for identical backends, fails for a wrong one
// (and only on the op that is wrong), and runs CUDA against CPU where a GPU is.

import Foundation
import XCTest
import NNCore
import NNCUDA
import NNConformance

final class ConformanceTests: XCTestCase {
    /// The first word of every check name: one per protocol op (allocate is used by all).
    static let operations: Set<String> = [
        "copy", "fill", "gemm", "addBias", "sumRows", "multiply", "activate", "activationBackward",
        "softmaxCrossEntropy", "sigmoidBinaryCrossEntropy", "squaredError", "dropout", "addPenalty", "update",
        "checkFinite",
    ]

    func operation(_ result: CheckResult) -> String { String(result.name.split(separator: " ")[0]) }

    func testCPUAgainstCPUPassesAndCoversEveryOp() {
        let results = Conformance.run(CPUAccelerator(threads: 1), reference: CPUAccelerator(threads: 1), seed: 7)
        print(Conformance.report(results))
        XCTAssertEqual(Set(results.map(operation)), Self.operations)
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
        let multiply = Set(results.filter { operation($0) == "multiply" }.map(\.name))
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
        XCTAssertTrue(failed.allSatisfy { operation($0) == "multiply" && $0.maxRelativeError > Conformance.relativeTolerance })
    }

    func testAWriteOutsideTheViewIsCaught() {
        let wrong = PerturbedAccelerator()
        wrong.addBiasWritesPastTheEnd = true
        let failed = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 5).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        for result in failed {
            XCTAssertEqual(operation(result), "addBias")
            XCTAssertTrue(result.detail.contains("guard value 0 outside the view"), result.detail)
        }
    }

    func testADifferentDropoutMaskFailsExactly() {
        let wrong = PerturbedAccelerator()
        wrong.dropoutKeyOffset = 1
        let failed = Conformance.run(wrong, reference: CPUAccelerator(threads: 1), seed: 9).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        XCTAssertTrue(failed.allSatisfy { operation($0) == "dropout" && $0.detail.contains("must be exact") },
                      failed.map(\.description).joined(separator: "\n"))
    }

    // MARK: - On a GPU

    func cuda() throws -> CUDAAccelerator {
        try requireCUDADevice()
        return try CUDAAccelerator(deviceOrdinal: 0)
    }

    func testCUDAAgainstCPU() throws {
        let gpu = try cuda()
        print("candidate: \(gpu.name); \(gpu.device); kernels from \(gpu.loadedCubin ? "CUBIN" : "PTX")")
        let results = Conformance.run(gpu, reference: CPUAccelerator(threads: 1), seed: 2024)
        print(Conformance.report(results))
        XCTAssertEqual(Set(results.map(operation)), Self.operations)
        for result in results where !result.passed { XCTFail(result.description) }
    }

    func testCUDAMemoryIsZeroedAndOutlivesTheAccelerator() throws {
        var gpu: CUDAAccelerator? = try cuda()
        let storage = gpu!.allocate(1000)
        XCTAssertEqual(gpu!.values(storage.tensor), [Float](repeating: 0, count: 1000))
        let view = Tensor(storage: storage, offset: 10, rows: 2, columns: 3)
        [1, 2, 3, 4, 5, 6].withUnsafeBufferPointer { gpu!.copy($0, to: view) }
        XCTAssertEqual(gpu!.values(view), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(gpu!.values(storage.tensor).reduce(0, +), 21)
        gpu = nil  // the storage keeps the context; freeing it afterwards must not fail
        _ = storage.count
    }
}

/// Where a CUDA device must be present (NNTRAIN_REQUIRE_CUDA=1, set by
/// scripts/cuda-emulator/run), a missing one fails the test; elsewhere the
/// test says it skipped and why.
func requireCUDADevice() throws {
    guard case .failure(let error) = CUDAAccelerator.probe() else { return }
    if ProcessInfo.processInfo.environment["NNTRAIN_REQUIRE_CUDA"] == "1" {
        throw MissingDevice(reason: error.message)
    }
    throw XCTSkip("no CUDA device: \(error.message)")
}

struct MissingDevice: Error, CustomStringConvertible {
    let reason: String
    var description: String { "NNTRAIN_REQUIRE_CUDA=1 but no CUDA device: \(reason)" }
}
