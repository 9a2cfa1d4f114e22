import Foundation
import NNCore
import NNData
import XCTest

final class FeatureScalerTests: XCTestCase {
    /// Three samples of three features; the middle one is constant.
    let data = Dataset(name: "tiny", features: [1, 5, 10,
                                                3, 5, 20,
                                                8, 5, 60],
                       featureCount: 3, labels: [7, 8, 9], labelWidth: 1)

    func testMinMax() {
        let scaler = FeatureScaler(fitting: data, method: .minmax)
        XCTAssertEqual(scaler.method, .minmax)
        XCTAssertEqual(scaler.offsets, [1, 5, 10])
        XCTAssertEqual(scaler.factors, [1.0 / 7, 1, 1.0 / 50])
        var scaled = data
        scaler.apply(to: &scaled)
        let expected: [Float] = [0, 0, 0, 2.0 / 7, 0, 0.2, 1, 0, 1]
        for (a, b) in zip(scaled.features, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(scaled.labels, [7, 8, 9])
    }

    func testStandardize() {
        let scaler = FeatureScaler(fitting: data, method: .standardize)
        // Means 4, 5, 30; population variances 26/3, 0, 1400/3.
        XCTAssertEqual(scaler.offsets, [4, 5, 30])
        XCTAssertEqual(scaler.factors[0], Float(1 / (26.0 / 3).squareRoot()), accuracy: 1e-7)
        XCTAssertEqual(scaler.factors[1], 1)
        XCTAssertEqual(scaler.factors[2], Float(1 / (1400.0 / 3).squareRoot()), accuracy: 1e-7)
        var scaled = data
        scaler.apply(to: &scaled)
        for j in 0..<3 {
            let column = (0..<3).map { Double(scaled.features[$0 * 3 + j]) }
            let mean = column.reduce(0, +) / 3
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3
            XCTAssertEqual(mean, 0, accuracy: 1e-6)
            XCTAssertEqual(variance, j == 1 ? 0 : 1, accuracy: 1e-5)
        }
        XCTAssertEqual(scaled.labels, [7, 8, 9])
    }

    func testNoneAndRowAndCodable() throws {
        let none = FeatureScaler(fitting: data, method: .none)
        XCTAssertEqual(none.offsets, [0, 0, 0])
        XCTAssertEqual(none.factors, [1, 1, 1])
        var unchanged = data
        none.apply(to: &unchanged)
        XCTAssertEqual(unchanged.features, data.features)

        let scaler = FeatureScaler(fitting: data, method: .minmax)
        var row: [Float] = [8, 5, 35]
        row.withUnsafeMutableBufferPointer { scaler.apply(toRow: $0) }
        XCTAssertEqual(row[0], 1, accuracy: 1e-6)
        XCTAssertEqual(row[1], 0)
        XCTAssertEqual(row[2], 0.5, accuracy: 1e-6)

        let restored = try JSONDecoder().decode(FeatureScaler.self, from: JSONEncoder().encode(scaler))
        XCTAssertEqual(restored, scaler)
        XCTAssertEqual(FeatureScaler(method: .minmax, offsets: scaler.offsets, factors: scaler.factors), scaler)
    }

    func testFitsOnTrainingSplitOnly() {
        let (training, _) = data.split(validationFraction: 0.34)
        XCTAssertEqual(training.count, 2)
        XCTAssertEqual(FeatureScaler(fitting: training, method: .minmax).factors[2], 1.0 / 10)
    }
}
