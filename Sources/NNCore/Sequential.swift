// A stack of layers over one flat parameter buffer and one flat gradient
// buffer of the same layout: allreduce is one call, the optimizer step one
// loop, a checkpoint one write.

/// Where one named parameter lives in the flat buffers.
public struct ParameterEntry: Equatable, Sendable {
    /// `layers.{i}.weight` or `layers.{i}.bias`, i counting Dense layers from 0.
    public let name: String
    /// Index of the first value in the flat buffer.
    public let offset: Int
    /// `[out, in]` for a weight, `[out]` for a bias.
    public let shape: [Int]
    /// Number of values.
    public var count: Int { shape.reduce(1, *) }
}

/// A feed-forward network: layers applied in order, parameters in one buffer.
public final class Sequential {
    public let accelerator: any Accelerator
    public let inputSize: Int
    public let layers: [any Layer]
    public let specs: [LayerSpec]
    public let objective: Objective
    /// All parameters, (1 × P).
    public let parameters: Tensor
    /// All gradients, (1 × P), same layout.
    public let gradients: Tensor
    /// The flat layout, in buffer order.
    public let entries: [ParameterEntry]
    /// Each layer's range of the flat parameter (and gradient) buffer; nil
    /// for a layer without parameters.
    public let parameterRanges: [Range<Int>?]

    /// Loss-head workspaces: probabilities and ∂E/∂output, (B × O).
    private var probabilities: Tensor?
    private var outputGradient: Tensor?

    /// Builds the layers and lays out their parameters; call `initialize`
    /// (or load values) before use. The parameters and the gradients go in
    /// `parameterStorage` and `gradientStorage` when given (each at least
    /// `parameterCount(inputSize:layers:)` values, e.g. memory other ranks
    /// can read), else in storage of their own.
    public init(inputSize: Int, layers specs: [LayerSpec], objective: Objective, accelerator: any Accelerator,
                parameterStorage: DeviceStorage? = nil, gradientStorage: DeviceStorage? = nil) {
        self.accelerator = accelerator
        self.inputSize = inputSize
        self.specs = specs
        self.objective = objective

        let entries = Sequential.layout(inputSize: inputSize, layers: specs)
        self.entries = entries
        let total = entries.last.map { $0.offset + $0.count } ?? 0
        precondition((parameterStorage?.count ?? total) >= total && (gradientStorage?.count ?? total) >= total,
                     "parameter or gradient storage smaller than the model")
        let parameterStorage = parameterStorage ?? accelerator.allocate(total)
        let gradientStorage = gradientStorage ?? accelerator.allocate(total)
        parameters = Tensor(storage: parameterStorage, offset: 0, rows: 1, columns: total)
        gradients = Tensor(storage: gradientStorage, offset: 0, rows: 1, columns: total)

        var layers: [any Layer] = []
        var ranges: [Range<Int>?] = []
        var entryIndex = 0
        var width = inputSize
        for (index, spec) in specs.enumerated() {
            switch spec {
            case .dense(let units, let activation, _, let l1, let l2):
                let w = entries[entryIndex], b = entries[entryIndex + 1]
                entryIndex += 2
                let view = { (storage: DeviceStorage, e: ParameterEntry, rows: Int, columns: Int) in
                    Tensor(storage: storage, offset: e.offset, rows: rows, columns: columns)
                }
                let dense = Dense(inputSize: width, outputSize: units, activation: activation, l1: l1, l2: l2,
                                  weight: view(parameterStorage, w, units, width),
                                  bias: view(parameterStorage, b, 1, units),
                                  weightGradient: view(gradientStorage, w, units, width),
                                  biasGradient: view(gradientStorage, b, 1, units),
                                  accelerator: accelerator)
                layers.append(dense)
                ranges.append(w.offset..<b.offset + b.count)
                width = units
            case .dropout(let rate):
                layers.append(Dropout(rate: rate, size: width, index: index, accelerator: accelerator))
                ranges.append(nil)
            }
        }
        if let last = layers.last as? Dense {
            last.deferActivation = objective.isFused
            last.perceptronRule = objective.perceptronRule
        }
        self.layers = layers
        parameterRanges = ranges
    }

    /// Parameters of a network with these layers (the flat buffers' length).
    public static func parameterCount(inputSize: Int, layers specs: [LayerSpec]) -> Int {
        layout(inputSize: inputSize, layers: specs).last.map { $0.offset + $0.count } ?? 0
    }

    /// The flat layout of a model's parameters: for each Dense layer i,
    /// `layers.i.weight` (units × inputs) then `layers.i.bias` (units).
    public static func layout(inputSize: Int, layers specs: [LayerSpec]) -> [ParameterEntry] {
        var entries: [ParameterEntry] = []
        var width = inputSize, offset = 0, denseIndex = 0
        for spec in specs {
            guard case .dense(let units, _, _, _, _) = spec else { continue }
            entries.append(ParameterEntry(name: "layers.\(denseIndex).weight", offset: offset, shape: [units, width]))
            offset += units * width
            entries.append(ParameterEntry(name: "layers.\(denseIndex).bias", offset: offset, shape: [units]))
            offset += units
            width = units
            denseIndex += 1
        }
        return entries
    }

    /// Width of the output layer.
    public var outputSize: Int { layers.last?.outputSize ?? inputSize }

    /// Number of parameters.
    public var parameterCount: Int { parameters.count }

    /// The Dense layers, in order.
    public var denseLayers: [Dense] { layers.compactMap { $0 as? Dense } }

    /// Draws initial weights from the seed (layer i from its own stream) and
    /// zeroes the biases.
    public func initialize(seed: UInt64) {
        var host = [Float](repeating: 0, count: parameterCount)
        var denseIndex = 0
        for spec in specs {
            guard case .dense(let units, _, let initializer, _, _) = spec else { continue }
            let entry = entries[2 * denseIndex]
            var stream = RandomStream(key: randomKey(seed: seed, purpose: .initialization, UInt64(denseIndex)))
            let w = initializer.weights(outputs: units, inputs: entry.shape[1], stream: &stream)
            host.replaceSubrange(entry.offset..<entry.offset + w.count, with: w)
            denseIndex += 1
        }
        host.withUnsafeBufferPointer { accelerator.copy($0, to: parameters) }
    }

    /// Allocates every workspace for batches of up to `batch` rows.
    public func reserve(batch: Int) {
        for layer in layers { layer.reserve(batch: batch) }
        if let probabilities, probabilities.rows >= batch { return }
        probabilities = accelerator.tensor(rows: batch, columns: outputSize)
        outputGradient = accelerator.tensor(rows: batch, columns: outputSize)
    }

    // MARK: - Passes

    /// Runs the layers; for a fused loss the result is the last layer's z (logits).
    public func forward(_ inputs: Tensor, pass: Pass) -> Tensor {
        var x = inputs
        for layer in layers { x = layer.forward(x, pass: pass) }
        return x
    }

    /// Sets every gradient to zero (backward only ever accumulates).
    public func zeroGradients() {
        accelerator.fill(gradients, with: 0)
    }

    /// Forward, loss and backward for one minibatch: *accumulates* the
    /// gradient of Σ_batch loss · `gradientScale` into `gradients`, and the
    /// batch's loss and correct count into `statistics`.
    ///
    /// `gradientsReady`, when given, hears each layer's range of the flat
    /// gradient buffer as soon as its gradients are queued, last layer first
    /// (so the ranges run from the end of the buffer towards its start).
    public func accumulateGradients(inputs: Tensor, targets: Tensor, gradientScale: Float, pass: Pass, statistics: Tensor,
                                    gradientsReady: ((Range<Int>) -> Void)? = nil) {
        reserve(batch: inputs.rows)
        let output = forward(inputs, pass: pass)
        let delta = outputGradient!.prefix(rows: inputs.rows)
        applyLoss(output: output, targets: targets, gradient: delta, gradientScale: gradientScale, statistics: statistics)
        var gradient = delta
        for (index, layer) in layers.enumerated().reversed() {
            let range = parameterRanges[index]
            let done = { if let range, let gradientsReady { gradientsReady(range) } }
            guard let next = layer.backward(gradient, pass: pass, needsInputGradient: index > 0, parametersDone: done) else { break }
            gradient = next
        }
    }


    /// Adds the L1/L2 weight penalties' gradients, and `rows` times their
    /// value to the loss sum (so that loss sum / rows includes them once).
    public func addPenalties(rows: Int, statistics: Tensor) {
        for dense in denseLayers where dense.l1 != 0 || dense.l2 != 0 {
            accelerator.addPenalty(weights: dense.weight, gradient: dense.weightGradient,
                                   l1: dense.l1, l2: dense.l2, weight: Float(rows), statistics: statistics)
        }
    }

    /// Whether any layer carries a weight penalty.
    public var hasPenalties: Bool { denseLayers.contains { $0.l1 != 0 || $0.l2 != 0 } }

    /// Adds the loss and correct count of a batch to `statistics`, without gradients.
    public func evaluate(inputs: Tensor, targets: Tensor, statistics: Tensor) {
        reserve(batch: inputs.rows)
        let output = forward(inputs, pass: .evaluation)
        applyLoss(output: output, targets: targets, gradient: nil, gradientScale: 0, statistics: statistics)
    }

    /// The model's outputs for a batch: probabilities for a fused loss, the
    /// last layer's activations otherwise. Valid until the next pass.
    public func predict(_ inputs: Tensor) -> Tensor {
        reserve(batch: inputs.rows)
        let output = forward(inputs, pass: .evaluation)
        guard objective.isFused else { return output }
        let p = probabilities!.prefix(rows: inputs.rows)
        accelerator.activate(objective.outputActivation, output, into: p)
        return p
    }

    private func applyLoss(output: Tensor, targets: Tensor, gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        let probs = probabilities!.prefix(rows: output.rows)
        switch objective.loss {
        case .sparseCategoricalCrossEntropy, .categoricalCrossEntropy:
            accelerator.softmaxCrossEntropy(logits: output, targets: targets,
                                            sparse: objective.loss == .sparseCategoricalCrossEntropy,
                                            probabilities: probs, gradient: gradient,
                                            gradientScale: gradientScale, statistics: statistics)
        case .binaryCrossEntropy:
            accelerator.sigmoidBinaryCrossEntropy(logits: output, targets: targets, probabilities: probs,
                                                  gradient: gradient, gradientScale: gradientScale, statistics: statistics)
        case .meanSquaredError:
            accelerator.squaredError(outputs: output, targets: targets, gradient: gradient,
                                     gradientFactor: objective.squaredErrorGradientFactor(gradientScale: gradientScale),
                                     accuracy: objective.accuracy, statistics: statistics)
        }
    }
}
