import Foundation
import NNCore
@testable import NNData
import XCTest

final class LinearSeparabilityTests: XCTestCase {
    /// The verdict for rows of points and their 0/1 labels.
    func verdict(_ points: [[Double]], _ labels: [Int]) -> LinearSeparability.Verdict? {
        LinearSeparability.test(features: points.flatMap { $0.map(Float.init) }, featureCount: points.first?.count ?? 0,
                                positive: labels.map { $0 == 1 })
    }

    /// Asserts `notSeparable` with a point that is a convex combination of each class.
    func assertNotSeparable(_ points: [[Double]], _ labels: [Int], file: StaticString = #filePath, line: UInt = #line) {
        guard case .notSeparable(let point)? = verdict(points, labels) else {
            return XCTFail("expected not separable, got \(String(describing: verdict(points, labels)))", file: file, line: line)
        }
        XCTAssertEqual(point.count, points[0].count, file: file, line: line)
        let low = (0..<point.count).map { j in points.map { $0[j] }.min()! }
        let high = (0..<point.count).map { j in points.map { $0[j] }.max()! }
        for j in point.indices {
            XCTAssert(point[j] >= low[j] - 1e-9 && point[j] <= high[j] + 1e-9, "the common point lies among the samples", file: file, line: line)
        }
    }

    let corners: [[Double]] = [[0, 0], [0, 1], [1, 0], [1, 1]]

    func testTheGates() throws {
        XCTAssertEqual(verdict(corners, [0, 0, 0, 1]), .separable, "AND")
        XCTAssertEqual(verdict(corners, [0, 1, 1, 1]), .separable, "OR")
        XCTAssertEqual(verdict(corners, [1, 1, 1, 0]), .separable, "NAND")
        assertNotSeparable(corners, [0, 1, 1, 0])
        // XOR's two diagonals cross at their midpoints: (0.5, 0.5) is in both hulls.
        XCTAssertEqual(verdict(corners, [0, 1, 1, 0]), .notSeparable(commonPoint: [0.5, 0.5]))
        assertNotSeparable(corners, [1, 0, 0, 1])
    }

    func testTheSyntheticGateSets() throws {
        for (name, separable) in [("and_gate", true), ("or_gate", true), ("xor_gate", false)] {
            let data = try SyntheticData.make(name: name, samples: 40, noise: 0, seed: 3)
            let result = LinearSeparability.test(data)
            XCTAssertEqual(result == .separable, separable, "\(name): \(String(describing: result))")
            XCTAssertNotNil(result, name)
        }
    }

    func testRandomSeparableSetsIn3D() {
        var random = RandomStream(key: 11)
        for trial in 0..<20 {
            let w = (0..<3).map { _ in Double(random.nextUniform(-1, 1)) }
            let b = Double(random.nextUniform(-0.5, 0.5))
            var points: [[Double]] = [], labels: [Int] = []
            while points.count < 60 {
                let x = (0..<3).map { _ in Double(random.nextUniform(-3, 3)) }
                let z = zip(w, x).map { $0 * $1 }.reduce(b, +)
                guard abs(z) > 0.05 else { continue }
                points.append(x)
                labels.append(z > 0 ? 1 : 0)
            }
            XCTAssertEqual(verdict(points, labels), .separable, "trial \(trial)")
        }
    }

    func testRandomLabelsOnManyPointsAreNotSeparable() {
        var random = RandomStream(key: 5)
        let points = (0..<200).map { _ in (0..<3).map { _ in Double(random.nextUniform(-1, 1)) } }
        let labels = points.indices.map { _ in random.nextUniform() < 0.5 ? 1 : 0 }
        assertNotSeparable(points, labels)
    }

    func testFewerPointsThanDimensionsAreAlwaysSeparable() {
        var random = RandomStream(key: 8)
        let points = (0..<6).map { _ in (0..<10).map { _ in Double(random.nextUniform(-1, 1)) } }
        XCTAssertEqual(verdict(points, [0, 1, 0, 1, 1, 0]), .separable)
    }

    func testTwoInterleavedCirclesAreNotSeparable() throws {
        var points: [[Double]] = [], labels: [Int] = []
        for k in 0..<24 {
            let angle = Double(k) * 2 * Double.pi / 24
            points.append([cos(angle), sin(angle)])
            labels.append(1)
            points.append([2 * cos(angle + 0.1), 2 * sin(angle + 0.1)])
            labels.append(0)
        }
        assertNotSeparable(points, labels)
        let circle = try SyntheticData.make(name: "circle", samples: 200, noise: 0, seed: 1)
        guard case .notSeparable? = LinearSeparability.test(circle) else { return XCTFail("synthetic circle") }
        // Two Gaussian clouds far apart are.
        let clouds = try SyntheticData.make(name: "gaussian", samples: 200, noise: 0, seed: 1)
        XCTAssertEqual(LinearSeparability.test(clouds), .separable)
    }

    func testOnALine() {
        XCTAssertEqual(verdict([[0], [1], [2], [3]], [1, 1, 0, 0]), .separable)
        assertNotSeparable([[0], [1], [2]], [1, 0, 1])
        XCTAssertEqual(verdict([[0], [1], [2]], [1, 0, 1]), .notSeparable(commonPoint: [1]))
    }

    func testOnePointWithBothLabelsIsNotSeparable() {
        let points: [[Double]] = [[0, 0], [3, 1], [3, 1], [-2, 5]]
        XCTAssertEqual(verdict(points, [0, 1, 0, 1]), .notSeparable(commonPoint: [3, 1]))
    }

    func testOneClassOnlyIsSeparable() {
        XCTAssertEqual(verdict(corners, [1, 1, 1, 1]), .separable)
        XCTAssertEqual(verdict(corners, [0, 0, 0, 0]), .separable)
        XCTAssertEqual(verdict([[2, 2], [2, 2]], [1, 1]), .separable, "duplicates of one class")
        XCTAssertEqual(LinearSeparability.test(features: [], featureCount: 2, positive: []), .separable, "no samples")
    }

    func testLargeMagnitudesAndConstantFeatures() {
        // Pixel-like values, with a constant column that carries nothing.
        let points: [[Double]] = [[0, 255, 7], [255, 0, 7], [0, 0, 7], [255, 255, 7]]
        assertNotSeparable(points, [1, 1, 0, 0])
        XCTAssertEqual(verdict(points, [1, 0, 0, 1]), .separable)
    }

    func testAnswersAtTheSizeLimit() throws {
        let samples = LinearSeparability.maximumEntries / 4
        for (name, noise) in [("gaussian", 0.0), ("gaussian", 0.3), ("spiral", 0.0)] {
            let data = try SyntheticData.make(name: name, samples: samples, noise: noise, seed: 2)
            let start = Date()
            let result = LinearSeparability.test(data)
            XCTAssertNotNil(result, "\(name) noise \(noise)")
            XCTAssertEqual(result == .separable, noise == 0 && name == "gaussian", "\(name) noise \(noise)")
            XCTAssertLessThan(Date().timeIntervalSince(start), 20, "\(name) noise \(noise)")
        }
    }

    func testTooLargeOrNonFiniteGetsNoAnswer() {
        let n = LinearSeparability.maximumEntries / 4 + 1
        let features = [Float](repeating: 0, count: 2 * n)
        XCTAssertNil(LinearSeparability.test(features: features, featureCount: 2, positive: (0..<n).map { $0 % 2 == 0 }))
        XCTAssertNil(LinearSeparability.test(features: [0, .nan, 1, 1], featureCount: 2, positive: [true, false]))
    }
}

final class FeasibilityProblemTests: XCTestCase {
    func testAFeasibleSystemGetsANonnegativeSolution() throws {
        // x0 + x1 + x2 = 2, x0 − x2 = 0.5.
        var problem = FeasibilityProblem(rows: 2, columns: 3)
        (problem[0, 0], problem[0, 1], problem[0, 2]) = (1, 1, 1)
        (problem[1, 0], problem[1, 2]) = (1, -1)
        problem.right = [2, 0.5]
        guard case .feasible(let x)? = problem.solve() else { return XCTFail("feasible") }
        XCTAssert(x.allSatisfy { $0 >= 0 }, "\(x)")
        XCTAssertEqual(x[0] + x[1] + x[2], 2, accuracy: 1e-12)
        XCTAssertEqual(x[0] - x[2], 0.5, accuracy: 1e-12)
    }

    func testAnInfeasibleSystemGetsFarkasCertificate() throws {
        // x0 + x1 = 1 and x0 + 2 x1 = 3 need x1 = 2, x0 = −1.
        var problem = FeasibilityProblem(rows: 2, columns: 2)
        (problem[0, 0], problem[0, 1]) = (1, 1)
        (problem[1, 0], problem[1, 1]) = (1, 2)
        problem.right = [1, 3]
        guard case .infeasible(let y)? = problem.solve() else { return XCTFail("infeasible") }
        for column in 0..<2 {
            XCTAssertLessThanOrEqual(y[0] * problem[0, column] + y[1] * problem[1, column], 1e-12, "yᵀA ≤ 0, column \(column)")
        }
        XCTAssertGreaterThan(y[0] * 1 + y[1] * 3, 0, "yᵀb > 0")
    }
}
