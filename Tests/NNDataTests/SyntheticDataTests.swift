import NNCore
import NNData
import XCTest

final class SyntheticDataTests: XCTestCase {
    private let continuous = ["xor", "circle", "gaussian", "spiral"]

    func testDeterministicPerSeed() throws {
        for name in SyntheticData.names {
            let a = try SyntheticData.make(name: name, samples: 101, noise: 0.2, seed: 42)
            let b = try SyntheticData.make(name: name, samples: 101, noise: 0.2, seed: 42)
            let c = try SyntheticData.make(name: name, samples: 101, noise: 0.2, seed: 43)
            XCTAssertEqual(a.features, b.features, name)
            XCTAssertEqual(a.labels, b.labels, name)
            // Another seed draws other points (the gates at least another order).
            XCTAssert(a.features != c.features || a.labels != c.labels, name)
        }
    }

    func testSizesAndBothClasses() throws {
        for name in SyntheticData.names {
            for samples in [1, 4, 7, 200] {
                let data = try SyntheticData.make(name: name, samples: samples, noise: 0.1, seed: 1)
                XCTAssertEqual(data.count, samples, name)
                XCTAssertEqual(data.featureCount, 2, name)
                XCTAssertEqual(data.labelWidth, 1, name)
                XCTAssertEqual(data.features.count, 2 * samples, name)
                XCTAssertEqual(data.name, "synthetic \(name)")
                XCTAssert(data.labels.allSatisfy { $0 == 0 || $0 == 1 }, name)
                XCTAssert(data.features.allSatisfy(\.isFinite), name)
                if samples == 200 {
                    XCTAssert(data.labels.contains(0) && data.labels.contains(1), name)
                    // Shuffled: the last fifth (a validation split) holds both classes too.
                    let tail = data.split(validationFraction: 0.2).validation.labels
                    XCTAssert(tail.contains(0) && tail.contains(1), name)
                }
            }
        }
        XCTAssertEqual(try SyntheticData.make(name: "xor", samples: 3, noise: 0, seed: 0).location(ofSample: 2),
                       "synthetic xor sample 2")
    }

    func testBalancedClasses() throws {
        for name in ["circle", "gaussian", "spiral"] {
            let data = try SyntheticData.make(name: name, samples: 201, noise: 0, seed: 9)
            XCTAssertEqual(data.labels.filter { $0 == 1 }.count, 101, name)
            XCTAssertEqual(data.labels.filter { $0 == 0 }.count, 100, name)
        }
    }

    func testXorLabelRule() throws {
        let data = try SyntheticData.make(name: "xor", samples: 500, noise: 0, seed: 3)
        for i in 0..<data.count {
            let x = data.features[2 * i], y = data.features[2 * i + 1]
            XCTAssertGreaterThanOrEqual(abs(x), 0.3)
            XCTAssertGreaterThanOrEqual(abs(y), 0.3)
            XCTAssertLessThanOrEqual(max(abs(x), abs(y)), 5.3)
            XCTAssertEqual(data.labels[i], x * y >= 0 ? 1 : 0, "sample \(i) at (\(x), \(y))")
        }
        // With noise the points move but keep their drawn labels, so some cross the axes.
        let noisy = try SyntheticData.make(name: "xor", samples: 500, noise: 0.5, seed: 3)
        let flipped = (0..<noisy.count).filter {
            (noisy.features[2 * $0] * noisy.features[2 * $0 + 1] >= 0 ? 1 : 0) != noisy.labels[$0]
        }
        XCTAssertFalse(flipped.isEmpty)
    }

    func testCircleRadii() throws {
        let data = try SyntheticData.make(name: "circle", samples: 400, noise: 0, seed: 5)
        for i in 0..<data.count {
            let r = (data.features[2 * i] * data.features[2 * i] + data.features[2 * i + 1] * data.features[2 * i + 1]).squareRoot()
            if data.labels[i] == 1 {
                XCTAssertLessThanOrEqual(r, 2.5 + 1e-5)
            } else {
                XCTAssertGreaterThanOrEqual(r, 3.5 - 1e-5)
                XCTAssertLessThanOrEqual(r, 5 + 1e-5)
            }
        }
    }

    func testGaussianCentersAndSpiralRadius() throws {
        let gaussian = try SyntheticData.make(name: "gaussian", samples: 2000, noise: 0, seed: 5)
        for label in [Float(0), 1] {
            let rows = (0..<gaussian.count).filter { gaussian.labels[$0] == label }
            let meanX = rows.map { gaussian.features[2 * $0] }.reduce(0, +) / Float(rows.count)
            XCTAssertEqual(meanX, label == 1 ? 2 : -2, accuracy: 0.1)
        }
        let spiral = try SyntheticData.make(name: "spiral", samples: 300, noise: 0, seed: 5)
        for i in 0..<spiral.count {
            let r = (spiral.features[2 * i] * spiral.features[2 * i] + spiral.features[2 * i + 1] * spiral.features[2 * i + 1]).squareRoot()
            XCTAssertLessThan(r, 5 + 1e-5)
        }
    }

    func testGateTruthTables() throws {
        let gates: [String: (Bool, Bool) -> Bool] = ["xor_gate": { $0 != $1 }, "and_gate": { $0 && $1 }, "or_gate": { $0 || $1 }]
        for (name, rule) in gates {
            let table = try SyntheticData.make(name: name, samples: 4, noise: 0.9, seed: 11)
            var rows = Set<[Float]>()
            for i in 0..<4 {
                let a = table.features[2 * i], b = table.features[2 * i + 1]
                XCTAssert([0, 1].contains(a) && [0, 1].contains(b), name)
                rows.insert([a, b])
                XCTAssertEqual(table.labels[i], rule(a == 1, b == 1) ? 1 : 0, "\(name) \(a) \(b)")
            }
            XCTAssertEqual(rows.count, 4, "\(name): the four distinct rows")
            let repeated = try SyntheticData.make(name: name, samples: 10, noise: 0, seed: 11)
            let ones = repeated.labels.filter { $0 == 1 }.count
            XCTAssertEqual(ones, name == "and_gate" ? 2 : name == "or_gate" ? 7 : 5, name)
        }
    }

    func testErrors() {
        assertUserError(try SyntheticData.make(name: "spiarl", samples: 10, noise: 0, seed: 0),
                        contains: ["'spiarl'", "xor, circle, gaussian, spiral", "did you mean 'spiral'?"])
        assertUserError(try SyntheticData.make(name: "moons", samples: 10, noise: 0, seed: 0), contains: ["'moons'", "xor"])
        assertUserError(try SyntheticData.make(name: "xor", samples: 0, noise: 0, seed: 0), contains: ["samples", "at least 1"])
        assertUserError(try SyntheticData.make(name: "xor", samples: 10, noise: -1, seed: 0), contains: ["noise"])
    }
}
