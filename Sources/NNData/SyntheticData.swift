// Small 2-D binary classification sets after the TensorFlow Playground, with
// labels 0/1 instead of its −1/+1, plus the logic-gate truth tables. Every draw
// comes from one stream keyed by (seed, set), so a seed names one exact set.

import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Generates the synthetic datasets.
public enum SyntheticData {
    /// The set names, in the order that numbers their random streams (keep it).
    public static let names = ["xor", "circle", "gaussian", "spiral", "xor_gate", "and_gate", "or_gate"]

    /// Generates `samples` points of the set `name`, in a shuffled order so
    /// that a validation split of the last fraction holds both classes.
    ///
    /// - `xor`: uniform in [−5, 5]², pushed 0.3 away from the axes; label 1
    ///   when x·y ≥ 0; noise adds uniform jitter ±noise·5 after labeling.
    /// - `circle`: label 1 at radius in [0, 2.5], label 0 at radius in
    ///   [3.5, 5], uniform angle; jitter ±noise·5 on x and y.
    /// - `gaussian`: label 1 around (2, 2), label 0 around (−2, −2); standard
    ///   deviation 0.5 + 7·noise (0.5…4 over the playground's noise 0…0.5).
    /// - `spiral`: two interleaved spirals of radius up to 5, label 1 and
    ///   label 0 half a turn apart; jitter ±noise.
    /// - `xor_gate`, `and_gate`, `or_gate`: the truth table over {0, 1}²
    ///   repeated to `samples` rows (4 gives each row once); noise ignored.
    ///
    /// The classes of `circle`, `gaussian` and `spiral` get ⌈samples/2⌉
    /// label-1 and ⌊samples/2⌋ label-0 points.
    /// - Throws: `UserError` for an unknown name, samples < 1, or a negative noise.
    public static func make(name: String, samples: Int, noise: Double, seed: UInt64) throws -> Dataset {
        guard let nameIndex = names.firstIndex(of: name) else {
            let hint = closestMatch(name, in: names).map { "; did you mean '\($0)'?" } ?? ""
            throw UserError("synthetic data: unknown set '\(name)' (valid: \(names.joined(separator: ", ")))\(hint); use one of these names")
        }
        guard samples >= 1 else {
            throw UserError("synthetic \(name): samples is \(samples); give at least 1")
        }
        guard noise >= 0, noise.isFinite else {
            throw UserError("synthetic \(name): noise is \(noise); give a value in [0, 1]")
        }
        var random = RandomStream(key: randomKey(seed: seed, purpose: .syntheticData, UInt64(nameIndex)))
        var points: [(x: Double, y: Double, label: Float)] = []
        points.reserveCapacity(samples)
        let positives = samples - samples / 2, negatives = samples / 2
        func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * random.nextDouble() }

        switch name {
        case "xor":
            let padding = 0.3
            for _ in 0..<samples {
                var x = uniform(-5, 5), y = uniform(-5, 5)
                x += x > 0 ? padding : -padding
                y += y > 0 ? padding : -padding
                let label: Float = x * y >= 0 ? 1 : 0
                x += uniform(-5, 5) * noise
                y += uniform(-5, 5) * noise
                points.append((x, y, label))
            }
        case "circle":
            let radius = 5.0
            for (count, label, low, high) in [(positives, Float(1), 0.0, radius * 0.5), (negatives, Float(0), radius * 0.7, radius)] {
                for _ in 0..<count {
                    let r = uniform(low, high), angle = uniform(0, 2 * Double.pi)
                    let x = r * sin(angle) + uniform(-radius, radius) * noise
                    let y = r * cos(angle) + uniform(-radius, radius) * noise
                    points.append((x, y, label))
                }
            }
        case "gaussian":
            let deviation = 0.5 + 3.5 * noise / 0.5
            for (count, label, center) in [(positives, Float(1), 2.0), (negatives, Float(0), -2.0)] {
                for _ in 0..<count {
                    let x = center + deviation * Double(random.nextNormal())
                    let y = center + deviation * Double(random.nextNormal())
                    points.append((x, y, label))
                }
            }
        case "spiral":
            for (count, label, deltaT) in [(positives, Float(1), 0.0), (negatives, Float(0), Double.pi)] {
                for i in 0..<count {
                    let fraction = Double(i) / Double(count)
                    let r = fraction * 5
                    let t = 1.75 * fraction * 2 * Double.pi + deltaT
                    let x = r * sin(t) + uniform(-1, 1) * noise
                    let y = r * cos(t) + uniform(-1, 1) * noise
                    points.append((x, y, label))
                }
            }
        default:  // the gates
            let gate: (Bool, Bool) -> Bool = name == "xor_gate" ? { $0 != $1 } : name == "and_gate" ? { $0 && $1 } : { $0 || $1 }
            for i in 0..<samples {
                let a = (i % 4) >= 2, b = (i % 4) % 2 == 1
                points.append((a ? 1 : 0, b ? 1 : 0, gate(a, b) ? 1 : 0))
            }
        }

        let order = random.permutation(samples)
        var features = [Float](repeating: 0, count: 2 * samples)
        var labels = [Float](repeating: 0, count: samples)
        for (position, source) in order.enumerated() {
            let point = points[Int(source)]
            features[2 * position] = Float(point.x)
            features[2 * position + 1] = Float(point.y)
            labels[position] = point.label
        }
        return Dataset(name: "synthetic \(name)", features: features, featureCount: 2, labels: labels, labelWidth: 1,
                       classNames: nil, origin: .memory)
    }
}
