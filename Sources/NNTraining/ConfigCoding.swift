// The stored form of the configuration's enums: the JSON kept in every model
// and checkpoint (and hashed so ranks can agree) spells a data source and a
// layer with Keras-style keys, `{"format": "csv", "path": …, "label": …}` and
// `{"kind": "dense", "units": 64, "activation": "relu", …}`.

import NNCore

extension DataSource: Codable {
    private enum Key: String, CodingKey { case format, path, label, images, labels, name, samples, noise, seed, limit }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        let limit = try c.decodeIfPresent(Int.self, forKey: .limit)
        switch try c.decode(String.self, forKey: .format) {
        case "csv":
            self = .csv(path: try c.decode(String.self, forKey: .path), label: try c.decode(String.self, forKey: .label),
                        limit: limit)
        case "idx":
            self = .idx(images: try c.decode(String.self, forKey: .images), labels: try c.decode(String.self, forKey: .labels),
                        limit: limit)
        case "synthetic":
            self = .synthetic(name: try c.decode(String.self, forKey: .name),
                              samples: try c.decodeIfPresent(Int.self, forKey: .samples) ?? DataSource.defaultSyntheticSamples,
                              noise: try c.decodeIfPresent(Double.self, forKey: .noise) ?? 0,
                              seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0, limit: limit)
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .format, in: c, debugDescription: "unknown data format '\(other)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .csv(let path, let label, _):
            try c.encode("csv", forKey: .format)
            try c.encode(path, forKey: .path)
            try c.encode(label, forKey: .label)
        case .idx(let images, let labels, _):
            try c.encode("idx", forKey: .format)
            try c.encode(images, forKey: .images)
            try c.encode(labels, forKey: .labels)
        case .synthetic(let name, let samples, let noise, let seed, _):
            try c.encode("synthetic", forKey: .format)
            try c.encode(name, forKey: .name)
            try c.encode(samples, forKey: .samples)
            try c.encode(noise, forKey: .noise)
            try c.encode(seed, forKey: .seed)
        }
        try c.encodeIfPresent(limit, forKey: .limit)
    }
}

extension ModelConfig: Codable {
    private enum Key: String, CodingKey { case layers }
    private enum LayerKey: String, CodingKey {
        case kind, units, activation, l1, l2, rate
        case kernelInitializer = "kernel_initializer"
    }

    public init(from decoder: Decoder) throws {
        var list = try decoder.container(keyedBy: Key.self).nestedUnkeyedContainer(forKey: .layers)
        var layers: [LayerSpec] = []
        while !list.isAtEnd {
            let c = try list.nestedContainer(keyedBy: LayerKey.self)
            switch try c.decode(String.self, forKey: .kind) {
            case "dense":
                let name = try c.decode(String.self, forKey: .activation)
                guard let activation = Activation(name: name) else {
                    throw DecodingError.dataCorruptedError(forKey: .activation, in: c, debugDescription: "unknown activation '\(name)'")
                }
                let initializerName = try c.decode(String.self, forKey: .kernelInitializer)
                guard let initializer = Initializer(rawValue: initializerName) else {
                    throw DecodingError.dataCorruptedError(forKey: .kernelInitializer, in: c,
                                                           debugDescription: "unknown initializer '\(initializerName)'")
                }
                layers.append(.dense(units: try c.decode(Int.self, forKey: .units), activation: activation, initializer: initializer,
                                     l1: try c.decodeIfPresent(Float.self, forKey: .l1) ?? 0,
                                     l2: try c.decodeIfPresent(Float.self, forKey: .l2) ?? 0))
            case "dropout":
                layers.append(.dropout(rate: try c.decode(Float.self, forKey: .rate)))
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown layer kind '\(other)'")
            }
        }
        self.init(layers: layers)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        var list = container.nestedUnkeyedContainer(forKey: .layers)
        for layer in layers {
            var c = list.nestedContainer(keyedBy: LayerKey.self)
            switch layer {
            case .dense(let units, let activation, let initializer, let l1, let l2):
                try c.encode("dense", forKey: .kind)
                try c.encode(units, forKey: .units)
                try c.encode(activation.name, forKey: .activation)
                try c.encode(initializer.rawValue, forKey: .kernelInitializer)
                // Penalties are stored only when set, as a config file spells them.
                if l1 != 0 { try c.encode(l1, forKey: .l1) }
                if l2 != 0 { try c.encode(l2, forKey: .l2) }
            case .dropout(let rate):
                try c.encode("dropout", forKey: .kind)
                try c.encode(rate, forKey: .rate)
            }
        }
    }
}
