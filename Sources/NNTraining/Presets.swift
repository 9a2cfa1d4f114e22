import NNCore
import NNData

// Built-in configurations, so nobody needs a file to start.

/// Named, ready-to-run configurations (`nntrain train --preset NAME`).
public enum Presets {
    /// Where Debian's `dataset-fashion-mnist` package puts the data.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    /// Preset names; the first is the default.
    public static let names = ["fashion-mnist", "xor", "perceptron", "spiral", "wide"]

    /// The `data` section of the Fashion-MNIST presets.
    private static let fashionMNISTData = """
        data:
          train: {format: idx, images: \(fashionMNISTDirectory)/train-images-idx3-ubyte.gz, labels: \(fashionMNISTDirectory)/train-labels-idx1-ubyte.gz}
          test: {format: idx, images: \(fashionMNISTDirectory)/t10k-images-idx3-ubyte.gz, labels: \(fashionMNISTDirectory)/t10k-labels-idx1-ubyte.gz}
          validation_split: 0.1
          scale: standardize
          class_names: [T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot]
        """

    /// The YAML text of a preset, or nil for an unknown name.
    public static func yaml(_ name: String) -> String? {
        switch name {
        case "fashion-mnist": return """
            # Fashion-MNIST: 60,000 28×28 clothing images in 10 classes.
            \(fashionMNISTData)
            model:
              layers:
                - dense: {units: 256, activation: relu}
                - dense: {units: 128, activation: relu}
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            # Adam from 0.001, cosine-decayed to 0 over the run.
            optimizer: {name: adam, learning_rate: 0.001, schedule: {name: cosine}}
            training: {epochs: 10, batch_size: 128, seed: 7}
            """
        case "wide": return """
            # Fashion-MNIST on a wide model (5.8M parameters, 23 MB of gradients a
            # step): for measuring communication, where the default model is
            # bound by computation.
            \(fashionMNISTData)
            model:
              layers:
                - dense: {units: 2048, activation: relu}
                - dense: {units: 2048, activation: relu}
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adam, learning_rate: 0.0005, schedule: {name: cosine}}
            training: {epochs: 3, batch_size: 128, seed: 7}
            """
        case "xor": return """
            # The course's XOR: no single perceptron separates it, one hidden layer does.
            data:
              train: {format: synthetic, name: xor_gate, samples: 4}
              test: {format: synthetic, name: xor_gate, samples: 4}
            model:
              layers:
                - dense: {units: 4, activation: tanh}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.05}
            training: {epochs: 300, batch_size: 4, seed: 7}
            """
        case "perceptron": return """
            # Rosenblatt's perceptron: one step unit, trained with the perceptron rule
            # on two Gaussian clouds that a line separates.
            data:
              train: {format: synthetic, name: gaussian, samples: 400, seed: 1}
              test: {format: synthetic, name: gaussian, samples: 200, seed: 2}
            model:
              layers:
                - dense: {units: 1, activation: step}
            loss: mse
            optimizer: {name: sgd, learning_rate: 0.1}
            training: {epochs: 10, batch_size: 1, seed: 7}
            """
        case "spiral": return """
            # The TensorFlow Playground's two interleaved spirals.
            data:
              train: {format: synthetic, name: spiral, samples: 1000, noise: 0.1, seed: 1}
              test: {format: synthetic, name: spiral, samples: 500, noise: 0.1, seed: 2}
              validation_split: 0.2
            model:
              layers:
                - dense: {units: 32, activation: tanh}
                - dense: {units: 32, activation: tanh}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.01}
            training: {epochs: 200, batch_size: 32, seed: 7}
            """
        default: return nil
        }
    }

    /// The parsed preset.
    public static func config(_ name: String) throws -> RunConfig {
        guard let text = yaml(name) else {
            let hint = closestMatch(name, in: names).map { "did you mean '\($0)'? " } ?? ""
            throw UserError("unknown preset '\(name)'; \(hint)choose one of \(names.joined(separator: ", "))")
        }
        return try ConfigReader.parse(text, file: "preset \(name)")
    }
}
