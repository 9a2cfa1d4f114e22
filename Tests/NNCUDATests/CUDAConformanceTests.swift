// The CUDA backend against the CPU through the conformance suite, and its
// memory, where a GPU (or the driver emulator) is. The suite's own tests are
// in NNConformanceTests.

import Foundation
import XCTest
import NNCore
import NNCUDA
import NNConformance

final class CUDAConformanceTests: XCTestCase {
    override func setUp() { libraryPathsFromTheEnvironment }

    func cuda() throws -> CUDAAccelerator {
        try requireCUDADevice()
        return try CUDAAccelerator(deviceOrdinal: 0)
    }

    func testCUDAAgainstCPU() throws {
        let gpu = try cuda()
        print("candidate: \(gpu.name); \(gpu.device); kernels from \(gpu.loadedCubin ? "CUBIN" : "PTX")")
        let results = Conformance.run(gpu, reference: CPUAccelerator(threads: 1), seed: 2024)
        print(Conformance.report(results))
        XCTAssertFalse(results.isEmpty)
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
/// Tests/CUDAEmulator/run), a missing one fails the test; elsewhere the
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
