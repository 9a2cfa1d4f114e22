// Model and checkpoint files (safetensors with nntrain metadata) through each
// path the app reads them by: ModelFile.decode(bytes:path:) as `train
// --resume` does, the summary and both reports of `nntrain inspect`, and
// LoadedModel with one prediction, as `predict` and `evaluate` do.

import FuzzDriver
import Foundation
import NNCore
import NNData
import NNTraining
import SafeTensors
@testable import NNTrainApp

let path = "fuzz/model.safetensors"
let filePath = FileManager.default.temporaryDirectory.path + "/nntrain-fuzz-\(getpid()).safetensors"
let accelerator = CPUAccelerator(threads: 1)

/// A model of `config` with small distinct weights, or a checkpoint of it.
func snapshot(_ config: RunConfig, inputSize: Int, checkpoint: Bool) -> ModelSnapshot {
    let count = Sequential.layout(inputSize: inputSize, layers: config.layerSpecs).reduce(0) { $0 + $1.count }
    let scaler = FeatureScaler(method: config.data.scale, offsets: (0..<inputSize).map { Float($0) },
                               factors: (0..<inputSize).map { 1 / Float($0 + 1) })
    var snapshot = ModelSnapshot(config: config, inputSize: inputSize, scaler: scaler,
                                 classNames: config.task == .classification
                                     ? (0..<max(config.outputUnits, 2)).map { "class \($0)" } : nil,
                                 parameters: (0..<count).map { Float($0 % 7) / 8 - 0.4 })
    snapshot.featureNames = (0..<inputSize).map { "f\($0)" }
    if checkpoint {
        snapshot.optimizerState = [Float](repeating: 0.01, count: count * config.optimizer.rule.slots.count)
        snapshot.optimizerSteps = 12
        snapshot.position = TrainingPosition(epoch: 1, stepInEpoch: 3, globalStep: 12, worldSize: 2,
                                             epochStatistics: [1.5, 7], epochSamples: 24)
    }
    return snapshot
}

Fuzz.main(seeds: { directory in
    let root = Fuzz.repositoryRoot
    guard let iris = Fuzz.readFile(root + "/datasets/iris/iris.yaml") else { throw SeedError("no datasets/iris/iris.yaml under \(root)") }
    let configs: [(String, RunConfig, Int)] = [
        ("iris", try ConfigReader.parse(String(decoding: iris, as: UTF8.self), file: "iris.yaml", baseDirectory: "/data"), 4),
        ("xor", try Presets.config("xor"), 2),
        ("perceptron", try Presets.config("perceptron"), 2),
    ]
    for (name, config, inputs) in configs {
        for checkpoint in [false, true] {
            let bytes = ModelFile.encode(snapshot(config, inputSize: inputs, checkpoint: checkpoint)).encoded()
            try Fuzz.writeSeed(bytes, "\(name)-\(checkpoint ? "checkpoint" : "model")", in: directory)
        }
    }
}) { bytes in
    var decoded = false
    Fuzz.expectAcceptedOrRefused(paths: [path]) {
        _ = try ModelFile.decode(bytes: bytes, path: path)
        decoded = true
    }
    Fuzz.expectAcceptedOrRefused(paths: [path]) {
        let summary = try ModelSummary(try SafeTensors.decode(bytes, path: path), path: path, fileBytes: bytes.count)
        _ = ModelReport.text(summary)
        _ = ModelReport.json(summary)
    }
    guard decoded else { return }
    // LoadedModel reads a path: the same bytes as a file.
    Fuzz.writeFile(bytes, to: filePath)
    defer { unlink(filePath) }
    Fuzz.expectAcceptedOrRefused(paths: [filePath]) {
        let model = try LoadedModel(path: filePath, accelerator: accelerator)
        let inputs = model.snapshot.inputSize
        guard inputs <= 4096 else { return }
        let row = Dataset(name: "row", features: [Float](repeating: 0.5, count: inputs), featureCount: inputs,
                          labels: [], labelWidth: 0, classNames: nil)
        _ = model.predict(row)
    }
}
