import NNCore
import NNData
import XCTest

final class DatasetTests: XCTestCase {
    /// Ten samples of two features (10·i, 10·i + 1) with labels (i, −i).
    let data = Dataset(name: "ten", features: (0..<10).flatMap { [Float(10 * $0), Float(10 * $0 + 1)] }, featureCount: 2,
                       labels: (0..<10).flatMap { [Float($0), Float(-$0)] }, labelWidth: 2)

    func testSplitTakesTheLastFraction() {
        let (training, validation) = data.split(validationFraction: 0.3)
        XCTAssertEqual(training.count, 7)
        XCTAssertEqual(validation.count, 3)
        XCTAssertEqual(Array(validation.features), [70, 71, 80, 81, 90, 91])
        XCTAssertEqual(validation.labels, [7, -7, 8, -8, 9, -9])
        XCTAssertEqual(Array(training.features), Array(data.features[0..<14]))
        XCTAssertEqual(validation.location(ofSample: 0), "ten sample 7")
        XCTAssertEqual(data.split(validationFraction: 0.25).validation.count, 2)  // ⌊2.5⌋
        XCTAssertEqual(data.split(validationFraction: 0).validation.count, 0)
        XCTAssertEqual(data.split(validationFraction: 0).training.count, 10)
        let hundred = Dataset(name: "h", features: [Float](repeating: 1, count: 100), featureCount: 1,
                              labels: [Float](repeating: 0, count: 100), labelWidth: 1)
        XCTAssertEqual(hundred.split(validationFraction: 0.29).validation.count, 29)
    }

    func testPrefix() {
        XCTAssertEqual(data.prefix(3).count, 3)
        XCTAssertEqual(data.prefix(3).labels, [0, 0, 1, -1, 2, -2])
        XCTAssertEqual(data.prefix(0).count, 0)
        XCTAssertEqual(data.prefix(0).featureCount, 2)
        XCTAssertEqual(data.prefix(50).count, 10)
    }

    func testGather() {
        let indices: [Int32] = [9, 0, 4, 4]
        var features = [Float](repeating: -1, count: 9)
        var labels = [Float](repeating: -1, count: 9)
        indices.withUnsafeBufferPointer { index in
            features.withUnsafeMutableBufferPointer { f in
                labels.withUnsafeMutableBufferPointer { l in
                    data.gather(indices: index, features: f.baseAddress!, labels: l.baseAddress!)
                }
            }
        }
        XCTAssertEqual(features, [90, 91, 0, 1, 40, 41, 40, 41, -1])
        XCTAssertEqual(labels, [9, -9, 0, 0, 4, -4, 4, -4, -1])

        let narrow = Dataset(name: "n", features: [1, 2, 3], featureCount: 1, labels: [5, 6, 7], labelWidth: 1)
        var x = [Float](repeating: 0, count: 2), y = [Float](repeating: 0, count: 2)
        [Int32(2), 0].withUnsafeBufferPointer { index in
            narrow.gather(indices: index, features: &x, labels: &y)
        }
        XCTAssertEqual(x, [3, 1])
        XCTAssertEqual(y, [7, 5])
    }

    func testClosestMatch() {
        XCTAssertEqual(closestMatch("specie", in: ["sepal", "species"]), "species")
        XCTAssertEqual(closestMatch("lable", in: ["features", "label"]), "label")
        XCTAssertEqual(closestMatch("Label", in: ["label"]), "label")
        XCTAssertEqual(closestMatch("learning_rat", in: ["epochs", "learning_rate", "momentum"]), "learning_rate")
        XCTAssertNil(closestMatch("colour", in: ["species", "petal_width"]))
        XCTAssertNil(closestMatch("x", in: ["y", "z"]))
        XCTAssertNil(closestMatch("anything", in: []))
    }
}
