// Training on a CUDA device: the same run as on the CPU, and checkpoints that
// move between the two. Runs wherever a CUDA driver is usable (a real GPU,
// or Tests/CUDAEmulator/run on a machine without one).

import Foundation
import XCTest
import NNCore
import NNCUDA
import NNTraining

final class GPUTrainingTests: XCTestCase {
    /// Where a device must be present (NNTRAIN_REQUIRE_CUDA=1, set by
    /// Tests/CUDAEmulator/run), a missing one fails; elsewhere it skips. The
    /// probe looks for NVRTC and cuBLAS where the run says, as nntrain does.
    override func setUpWithError() throws {
        let environment = ProcessInfo.processInfo.environment
        CUDALibraryPaths.nvrtc = CUDALibraryPaths.directories(environment["NNTRAIN_NVRTC_DIR"])
        CUDALibraryPaths.cublas = CUDALibraryPaths.directories(environment["NNTRAIN_CUBLAS_DIR"])
        guard case .failure(let error) = CUDAAccelerator.probe() else { return }
        if ProcessInfo.processInfo.environment["NNTRAIN_REQUIRE_CUDA"] == "1" {
            throw UserError("NNTRAIN_REQUIRE_CUDA=1 but no CUDA device: \(error.message)")
        }
        throw XCTSkip("no CUDA device: \(error.message)")
    }

    func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        let diff = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
        return diff / b.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
    }

    func train(_ arguments: [String]) throws {
        let outcome = try nntrain(["train"] + arguments)
        XCTAssertEqual(outcome.status, 0, outcome.stdout + outcome.stderr)
    }

    func testCUDATrainsLikeTheCPU() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, samples: 240, batch: 30)
        try train(["--config", config, "--device", "cpu", "--run-dir", dir + "/cpu"])
        try train(["--config", config, "--device", "cuda", "--run-dir", dir + "/cuda"])
        XCTAssertLessThan(relativeDifference(try modelParameters(dir + "/cuda"), try modelParameters(dir + "/cpu")), 1e-4)
    }

    func testCheckpointsMoveBetweenCPUAndGPU() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, samples: 240, batch: 30)
        try train(["--config", config, "--device", "cpu", "--run-dir", dir + "/reference"])
        let reference = try modelParameters(dir + "/reference")
        for (first, second) in [("cuda", "cpu"), ("cpu", "cuda")] {
            let run = dir + "/\(first)-\(second)"
            try train(["--config", config, "--device", first, "--epochs", "2", "--run-dir", run])
            try train(["--run-dir", run, "--resume", "--epochs", "3", "--device", second])
            XCTAssertLessThan(relativeDifference(try modelParameters(run), reference), 1e-4, "\(first) then \(second)")
        }
    }

    /// Two ranks, each on the device, summing gradients through page-locked
    /// host memory, end where one CPU process ends.
    func testTwoRanksOnTheDeviceTrainLikeOneCPUProcess() throws {
        let dir = temporaryDirectory(self)
        let config = smallConfig(in: dir, samples: 240, batch: 30)
        try train(["--config", config, "--device", "cpu", "--run-dir", dir + "/cpu"])
        let outcome = try mpirun(2, ["train", "--config", config, "--device", "cuda", "--run-dir", dir + "/cuda2"], timeout: 600)
        XCTAssertEqual(outcome.status, 0, outcome.stdout + outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("identical on all 2 ranks"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("gradients: allreduce staged through page-locked host memory"), outcome.stdout)
        XCTAssertLessThan(relativeDifference(try modelParameters(dir + "/cuda2"), try modelParameters(dir + "/cpu")), 1e-4)
    }

    /// The device reads its non-finite record only now and then, yet the
    /// error names the step where it happened (as the CPU, which checks every
    /// step), and no checkpoint holds anything from after it.
    func testDivergenceIsReportedAtTheStepItHappened() throws {
        let dir = temporaryDirectory(self)
        let config = divergingConfig(in: dir)
        var steps: [String] = []
        for device in ["cpu", "cuda"] {
            let run = dir + "/" + device
            let outcome = try nntrain(["train", "--config", config, "--device", device, "--run-dir", run])
            XCTAssertEqual(outcome.status, 2, outcome.stderr)
            let errors = outcome.stderr.split(separator: "\n").filter { $0.contains("nntrain: error:") }
            XCTAssertEqual(errors.count, 1, outcome.stderr)
            let line = String(errors.first ?? "")
            XCTAssertTrue(line.contains("NaN, infinite or too large to square"), line)
            steps.append(line.components(separatedBy: " (epoch").first ?? "")
            let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")) ?? []
            XCTAssertTrue(checkpoints.filter { $0.hasSuffix(".safetensors") }.isEmpty, "\(device): \(checkpoints)")
        }
        XCTAssertEqual(steps[0], steps[1], "the device reports the step the CPU reports")
        XCTAssertTrue(steps[0].hasSuffix("step 3"), steps[0])
    }
}
