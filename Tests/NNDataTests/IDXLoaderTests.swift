import Foundation
import NNCore
import NNData
import XCTest

final class IDXLoaderTests: XCTestCase {
    /// 3 images of 2×3 with distinct pixels, and their labels.
    let pixels: [UInt8] = (0..<18).map { UInt8($0 * 14 + 3) }
    let labelBytes: [UInt8] = [7, 0, 255]

    private func checkLoaded(_ dataset: Dataset, labelsPath: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(dataset.count, 3, file: file, line: line)
        XCTAssertEqual(dataset.featureCount, 6, file: file, line: line)
        XCTAssertEqual(dataset.labelWidth, 1, file: file, line: line)
        XCTAssertEqual(Array(dataset.features), pixels.map(Float.init), file: file, line: line)
        XCTAssertEqual(dataset.labels, [7, 0, 255], file: file, line: line)
        XCTAssertNil(dataset.classNames, file: file, line: line)
        XCTAssertEqual(dataset.location(ofSample: 2), "\(labelsPath) item 2", file: file, line: line)
    }

    func testRawFiles() throws {
        let dir = try TemporaryDirectory()
        let images = try dir.write(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels), to: "images")
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        checkLoaded(try IDXLoader.load(images: images, labels: labels), labelsPath: labels)
    }

    func testGzipFiles() throws {
        let dir = try TemporaryDirectory()
        let raw = idxImages(count: 3, rows: 2, columns: 3, pixels: pixels)
        let compressed = gzip(raw)
        XCTAssertEqual(Array(compressed.prefix(2)), [0x1F, 0x8B])
        let images = try dir.write(compressed, to: "images.gz")
        let labels = try dir.write(gzip(idxLabels(labelBytes)), to: "labels.gz")
        checkLoaded(try IDXLoader.load(images: images, labels: labels), labelsPath: labels)
    }

    func testLargeGzipGrowsItsBuffer() throws {
        // Two members with a tiny last one: the trailer's size hint is far too
        // small, so decompression must grow its buffer several times.
        let dir = try TemporaryDirectory()
        let count = 500
        let big = (0..<(count * 28 * 28)).map { UInt8(($0 / 7) % 256) }
        let raw = idxImages(count: count, rows: 28, columns: 28, pixels: big)
        let images = try dir.write(gzip(Array(raw.dropLast(10))) + gzip(Array(raw.suffix(10))), to: "images.gz")
        let labels = try dir.write(idxLabels([UInt8](repeating: 1, count: count)), to: "labels")
        let dataset = try IDXLoader.load(images: images, labels: labels)
        XCTAssertEqual(dataset.count, count)
        XCTAssertEqual(Array(dataset.features), big.map(Float.init))

        // zlib checks the trailer's size, so a wrong one is reported as corrupt.
        var compressed = gzip(raw)
        compressed[compressed.count - 4] ^= 1
        let bad = try dir.write(compressed, to: "bad.gz")
        assertUserError(try IDXLoader.load(images: bad, labels: labels), contains: [bad, "corrupt"])
    }

    func testConcatenatedGzipMembers() throws {
        let dir = try TemporaryDirectory()
        let raw = idxImages(count: 3, rows: 2, columns: 3, pixels: pixels)
        let images = try dir.write(gzip(Array(raw[0..<10])) + gzip(Array(raw[10...])), to: "images.gz")
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        checkLoaded(try IDXLoader.load(images: images, labels: labels), labelsPath: labels)
    }

    func testLimit() throws {
        let dir = try TemporaryDirectory()
        let images = try dir.write(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels), to: "images")
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        let dataset = try IDXLoader.load(images: images, labels: labels, limit: 2)
        XCTAssertEqual(dataset.count, 2)
        XCTAssertEqual(Array(dataset.features), Array(pixels[0..<12]).map(Float.init))
        XCTAssertEqual(dataset.labels, [7, 0])
        XCTAssertEqual(try IDXLoader.load(images: images, labels: labels, limit: 10).count, 3)
    }

    // MARK: - Errors

    func testSwappedFiles() throws {
        let dir = try TemporaryDirectory()
        let images = try dir.write(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels), to: "images")
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        assertUserError(try IDXLoader.load(images: labels, labels: images),
                        contains: [labels, "not an IDX image file", "magic 0x00000801, expected 0x00000803", "swap"])
        let garbage = try dir.write(Array("hello, world".utf8), to: "garbage")
        assertUserError(try IDXLoader.load(images: images, labels: garbage),
                        contains: [garbage, "not an IDX label file", "expected 0x00000801"])
    }

    func testTruncatedFiles() throws {
        let dir = try TemporaryDirectory()
        let full = idxImages(count: 3, rows: 2, columns: 3, pixels: pixels)
        let images = try dir.write(Array(full.dropLast(5)), to: "images")
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        assertUserError(try IDXLoader.load(images: images, labels: labels),
                        contains: [images, "truncated", "3 images of 2×3", "18 bytes", "holds 13"])
        let shortHeader = try dir.write(Array(full.prefix(9)), to: "short")
        assertUserError(try IDXLoader.load(images: shortHeader, labels: labels), contains: [shortHeader, "truncated"])
        let shortLabels = try dir.write(idxLabels([1, 2], count: 3), to: "short-labels")
        assertUserError(try IDXLoader.load(images: dir.write(full, to: "ok"), labels: shortLabels),
                        contains: [shortLabels, "truncated", "3 labels"])
        let truncatedGzip = gzip(full)
        let cut = try dir.write(Array(truncatedGzip.prefix(truncatedGzip.count / 2)), to: "cut.gz")
        assertUserError(try IDXLoader.load(images: cut, labels: labels), contains: [cut, "truncated"])
    }

    func testCountMismatch() throws {
        let dir = try TemporaryDirectory()
        let images = try dir.write(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels), to: "images")
        let labels = try dir.write(idxLabels([1, 2]), to: "labels")
        assertUserError(try IDXLoader.load(images: images, labels: labels),
                        contains: [images, labels, "3 images", "2 labels"])
    }

    func testMissingFile() throws {
        let dir = try TemporaryDirectory()
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        let missing = dir.path + "/no-such-images.gz"
        assertUserError(try IDXLoader.load(images: missing, labels: labels),
                        contains: [missing, "cannot open", "No such file"])
        assertUserError(try IDXLoader.load(images: dir.path, labels: labels), contains: [dir.path, "directory"])
    }

    func testCorruptGzip() throws {
        let dir = try TemporaryDirectory()
        var compressed = gzip(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels))
        for k in 12..<min(24, compressed.count - 8) { compressed[k] ^= 0x5A }
        let images = try dir.write(compressed, to: "images.gz")
        let labels = try dir.write(idxLabels(labelBytes), to: "labels")
        assertUserError(try IDXLoader.load(images: images, labels: labels), contains: [images, "gzip", "corrupt"])
        let magicOnly = try dir.write([0x1F, 0x8B, 0x08, 0x00, 0x13], to: "stub.gz")
        assertUserError(try IDXLoader.load(images: magicOnly, labels: labels), contains: [magicOnly, "gzip"])
    }

    // MARK: - Real data

    func testFashionMNISTTestSet() throws {
        let directory = "/usr/share/datasets/fashion-mnist"
        let images = directory + "/t10k-images-idx3-ubyte.gz", labels = directory + "/t10k-labels-idx1-ubyte.gz"
        guard FileManager.default.fileExists(atPath: images), FileManager.default.fileExists(atPath: labels) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(directory)")
        }
        let dataset = try IDXLoader.load(images: images, labels: labels)
        XCTAssertEqual(dataset.count, 10000)
        XCTAssertEqual(dataset.featureCount, 784)
        XCTAssertEqual(dataset.features.count, 10000 * 784)
        var histogram = [Int](repeating: 0, count: 10)
        for label in dataset.labels {
            XCTAssert(label >= 0 && label <= 9 && label == label.rounded(), "label \(label)")
            histogram[Int(label)] += 1
        }
        XCTAssertEqual(histogram, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(dataset.features.min(), 0)
        XCTAssertEqual(dataset.features.max(), 255)
    }
}
