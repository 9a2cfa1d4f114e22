// Measurements behind the figures in scripts/: the bound that a training
// step's matrix products alone allow.

import Foundation
import NNCore
import NNDistributed
import NNData
import NNTraining

/// Timings used by the benchmark scripts (never by tests).
enum Benchmarks {
    /// The result of timing a fixed piece of work repeatedly.
    struct Timing: Sendable {
        var iterations: Int
        var seconds: Double
        /// Seconds per iteration.
        var perIteration: Double { seconds / Double(max(iterations, 1)) }
    }

    /// Times the matrix products of one training step of a dense network with
    /// layer widths `widths` (input first) at batch `batch`: per layer the
    /// forward product, the weight-gradient product, and the input-gradient
    /// product for every layer but the first. Nothing else runs.
    static func stepGEMMs(widths: [Int], batch: Int, accelerator: any Accelerator, seconds: Double) -> Timing {
        let layers = widths.count - 1
        let weights = (0..<layers).map { accelerator.tensor(rows: widths[$0 + 1], columns: widths[$0]) }
        let gradients = (0..<layers).map { accelerator.tensor(rows: widths[$0 + 1], columns: widths[$0]) }
        let activations = widths.map { accelerator.tensor(rows: batch, columns: $0) }
        let deltas = widths.map { accelerator.tensor(rows: batch, columns: $0) }
        for t in weights + activations + deltas { accelerator.fill(t, with: 0.01) }
        func step() {
            for l in 0..<layers {
                accelerator.gemm(transposeA: false, transposeB: true, alpha: 1, activations[l], weights[l], beta: 0, activations[l + 1])
            }
            for l in (0..<layers).reversed() {
                accelerator.gemm(transposeA: true, transposeB: false, alpha: 1, deltas[l + 1], activations[l], beta: 1, gradients[l])
                if l > 0 {
                    accelerator.gemm(transposeA: false, transposeB: false, alpha: 1, deltas[l + 1], weights[l], beta: 0, deltas[l])
                }
            }
        }
        for _ in 0..<20 { step() }  // warm-up: threads started, caches filled
        _ = accelerator.values(gradients[0].prefix(rows: 1))
        var iterations = 0
        let start = Date()
        var elapsed = 0.0
        repeat {
            for _ in 0..<10 { step() }
            iterations += 10
            _ = accelerator.values(gradients[0].prefix(rows: 1))
            elapsed = Date().timeIntervalSince(start)
        } while elapsed < seconds
        return Timing(iterations: iterations, seconds: elapsed)
    }

    /// Layer widths of a configuration's dense layers, input first.
    static func widths(of config: RunConfig, inputSize: Int) -> [Int] {
        [inputSize] + config.model.denseLayers.map(\.units)
    }
}

extension Benchmarks {
    /// Times a bare allreduce of `count` floats under the current MPI job, the
    /// rank 0 ↔ rank 1 bandwidth and, with every rank on one host, the time
    /// to read another rank's freshly written share of such a buffer from
    /// shared memory (the floor of any allreduce there); returns rank 0's
    /// JSON line (nil elsewhere).
    static func allreduce(count: Int, iterations: Int) -> String? {
        let (communicator, _) = Launch.communicator()
        defer { communicator.finalize() }
        guard communicator.size > 1 else { return "{\"error\": \"run under mpirun with 2 or more ranks\"}" }
        let seconds = MPIBenchmarks.allreduceSeconds(count: count, iterations: iterations)
        let bandwidth = MPIBenchmarks.pingPongBandwidth(bytes: 64 << 20, iterations: 10)
        let sharedRead = (communicator as? MPICommunicator)?.sharedReadSeconds(count: count, iterations: iterations)
        guard communicator.isCoordinator else { return nil }
        return String(format: "{\"ranks\": %d, \"floats\": %d, \"bytes\": %d, \"algorithm\": \"%@\", \"allreduce_us\": %.1f, \"bandwidth_gb_s\": %.2f, \"shared_read_us\": %@}",
                      communicator.size, count, count * 4, Environment.allreduceAlgorithm, seconds * 1e6, bandwidth / 1e9,
                      sharedRead.map { String(format: "%.1f", $0 * 1e6) } ?? "null")
    }
}

extension Benchmarks {
    /// Times every Open MPI allreduce algorithm on `count` floats in this one
    /// job, and the shared-memory sum when every rank is on one host, with
    /// train's start-up measurement; returns rank 0's JSON line (nil elsewhere).
    static func allreduceAlgorithms(count: Int) -> String? {
        let (communicator, _) = Launch.communicator()
        defer { communicator.finalize() }
        guard communicator.size > 1 else { return "{\"error\": \"run under mpirun with 2 or more ranks\"}" }
        // As the trainer's gradients would be: in shared memory where the ranks share a host.
        _ = communicator.allocateShared(count: count, wanted: true)
        let result = communicator.tuneAllreduce(count: count)
        guard communicator.isCoordinator else { return nil }
        switch result {
        case .measured(let measurement)?:
            let times = measurement.timings.map { String(format: "\"%@\": %.1f", AllreduceTuning.name($0.algorithm), $0.seconds * 1e6) }
            return String(format: "{\"ranks\": %d, \"floats\": %d, \"bytes\": %d, \"allreduce_us\": {%@}, \"fastest\": \"%@\", \"seconds\": %.2f}",
                          communicator.size, count, count * 4, times.joined(separator: ", "), AllreduceTuning.name(measurement.chosen),
                          measurement.seconds)
        case .unavailable(let reason)?:
            return "{\"error\": \"\(reason)\"}"
        case .applied?, nil:
            return "{\"error\": \"nothing was measured\"}"
        }
    }
}

extension Benchmarks {
    /// Write and read times of a checkpoint of `config`'s model (with its
    /// optimizer state) in `directory`, and its size against the raw bytes.
    static func checkpoint(config: RunConfig, inputSize: Int, directory: String, repetitions: Int) throws
        -> (writeMilliseconds: Double, readMilliseconds: Double, fileBytes: Int, rawBytes: Int) {
        let layout = Sequential.layout(inputSize: inputSize, layers: config.layerSpecs)
        let count = layout.last.map { $0.offset + $0.count } ?? 0
        var stream = RandomStream(key: randomKey(seed: 1, purpose: .testing))
        let parameters = (0..<count).map { _ in stream.nextUniform(-1, 1) }
        let slots = config.optimizer.rule.slots.count
        let state = (0..<(slots * count)).map { _ in stream.nextUniform(0, 1) }
        let position = TrainingPosition(epoch: 3, stepInEpoch: 17, globalStep: 1283, worldSize: 1,
                                        epochStatistics: [1, 2, 3, 4], epochSamples: 2176)
        let snapshot = ModelSnapshot(config: config, inputSize: inputSize,
                                     scaler: FeatureScaler(method: .none, offsets: [], factors: []), classNames: nil,
                                     parameters: parameters, optimizerState: state, optimizerSteps: 1283, position: position)
        let path = directory + "/" + Checkpoints.fileName(step: 1283)
        var writing = 0.0, reading = 0.0
        for _ in 0..<repetitions {
            var start = Date()
            try ModelFile.write(snapshot, to: path)
            writing += Date().timeIntervalSince(start)
            start = Date()
            let back = try ModelFile.read(path: path)
            reading += Date().timeIntervalSince(start)
            precondition(back.parameters == parameters && back.optimizerState == state)
        }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return (1000 * writing / Double(repetitions), 1000 * reading / Double(repetitions), size, 4 * (count + state.count))
    }

    /// The time of writing a run's report.html as the refresher does after
    /// each epoch: the first write (files read and decoded), then the mean
    /// of `repetitions` more with the same writer.
    static func reportRefresh(runDirectory: String, repetitions: Int) throws
        -> (firstMilliseconds: Double, refreshMilliseconds: Double, bytes: Int) {
        let writer = ReportWriter(directory: runDirectory, accelerator: { CPUAccelerator(threads: 1) })
        var start = DispatchTime.now().uptimeNanoseconds
        let bytes = try writer.write(live: true)
        let first = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let count = max(1, repetitions)
        start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count { try writer.write(live: true) }
        return (first, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(count), bytes)
    }
}

extension Benchmarks {
    /// The cost of the optimizer's non-finite check: the median time of one
    /// update of `config`'s model (its rule, one rank, one thread) with the
    /// check and without it, in alternating rounds, and the time of the
    /// step's matrix products at the config's batch for scale.
    static func updateCheck(config: RunConfig, inputSize: Int, rounds: Int)
        -> (parameters: Int, plainMicroseconds: Double, checkedMicroseconds: Double, stepGEMMMilliseconds: Double) {
        let layout = Sequential.layout(inputSize: inputSize, layers: config.layerSpecs)
        let n = layout.last.map { $0.offset + $0.count } ?? 0
        var stream = RandomStream(key: randomKey(seed: 1, purpose: .testing))
        func buffer(_ value: () -> Float) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            for i in 0..<n { p[i] = value() }
            return p
        }
        let w = buffer { stream.nextUniform(-0.1, 0.1) }, g = buffer { stream.nextUniform(-1e-3, 1e-3) }
        let slots = config.optimizer.rule.slots.map { _ in buffer { 0 } }
        defer { ([w, g] + slots).forEach { $0.deallocate() } }
        let rule = config.optimizer.rule
        func time(check: Bool, steps: Int) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for step in 1...steps {
                let constants = rule.constants(step: step, learningRate: 1e-3, weightDecay: 0)
                _ = CPUAccelerator.update(constants, w, g, slots, count: n, store: true, check: check)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(steps)
        }
        _ = time(check: true, steps: 50)
        _ = time(check: false, steps: 50)
        var plain: [Double] = [], checked: [Double] = []
        for _ in 0..<max(1, rounds) {
            plain.append(time(check: false, steps: 200))
            checked.append(time(check: true, steps: 200))
        }
        let gemm = stepGEMMs(widths: widths(of: config, inputSize: inputSize), batch: config.training.batchSize,
                             accelerator: CPUAccelerator(threads: 1), seconds: 1).perIteration
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return (n, median(plain), median(checked), gemm * 1000)
    }
}
