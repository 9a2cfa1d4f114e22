// Training on a CUDA device: the same run as on the CPU, and checkpoints that
// move between the two. Runs wherever a CUDA driver is usable (a real GPU,
// or scripts/cuda-emulator/run on a machine without one).

import Foundation
import XCTest
import NNCUDA
import NNTraining

final class GPUTrainingTests: XCTestCase {
    override func setUpWithError() throws {
        if case .failure(let error) = CUDAAccelerator.probe() {
            throw XCTSkip("no CUDA device: \(error.message)")
        }
    }

    func config(in dir: String) -> String {
        write("""
            data:
              train: {format: synthetic, name: spiral, samples: 240, noise: 0.1, seed: 3}
              validation_split: 0.25
              scale: standardize
            model:
              layers:
                - dense: {units: 16, activation: tanh, l2: 0.0001}
                - dropout: {rate: 0.1}
                - dense: {units: 8, activation: relu}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.01}
            training: {epochs: 3, batch_size: 30, seed: 5}
            """, "gpu.yaml", in: dir)
    }

    func parameters(_ run: String) throws -> [Float] {
        try SafeTensors.read(path: run + "/model.safetensors").tensors.flatMap(\.values)
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
        let config = config(in: dir)
        try train(["--config", config, "--device", "cpu", "--run-dir", dir + "/cpu"])
        try train(["--config", config, "--device", "cuda", "--run-dir", dir + "/cuda"])
        XCTAssertLessThan(relativeDifference(try parameters(dir + "/cuda"), try parameters(dir + "/cpu")), 1e-4)
    }

    func testCheckpointsMoveBetweenCPUAndGPU() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir)
        try train(["--config", config, "--device", "cpu", "--run-dir", dir + "/reference"])
        let reference = try parameters(dir + "/reference")
        for (first, second) in [("cuda", "cpu"), ("cpu", "cuda")] {
            let run = dir + "/\(first)-\(second)"
            try train(["--config", config, "--device", first, "--epochs", "2", "--run-dir", run])
            try train(["--run-dir", run, "--resume", "--epochs", "3", "--device", second])
            XCTAssertLessThan(relativeDifference(try parameters(run), reference), 1e-4, "\(first) then \(second)")
        }
    }
}
