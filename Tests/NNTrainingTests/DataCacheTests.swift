import Foundation
import NNCore
import NNData
@testable import NNTraining
import XCTest

final class DataCacheTests: XCTestCase {
    /// An IDX pair of `count` 28×28 images in `directory`, and a config that trains on it.
    func idxConfig(in directory: String, count: Int, validationSplit: Double = 0.25) throws -> RunConfig {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var images = [0, 0, 8, 3].map(UInt8.init) + be(count) + be(28) + be(28)
        images += (0..<count * 784).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 784) }
        let labels = [0, 0, 8, 1].map(UInt8.init) + be(count) + (0..<count).map { UInt8($0 % 10) }
        try Data(images).write(to: URL(fileURLWithPath: directory + "/images.idx"))
        try Data(labels).write(to: URL(fileURLWithPath: directory + "/labels.idx"))
        return try ConfigReader.parse("""
            data:
              train: {format: idx, images: \(directory)/images.idx, labels: \(directory)/labels.idx}
              test: {format: idx, images: \(directory)/images.idx, labels: \(directory)/labels.idx, limit: 10}
              validation_split: \(validationSplit)
              scale: standardize
            model:
              layers:
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            """, file: "c.yaml")
    }

    private func be(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) } }

    func testWrittenOnceThenFoundAndMappedAsLoaded() throws {
        let root = temporaryDirectory()
        let config = try idxConfig(in: root + "/data", count: 40)
        let objective = try config.objective()
        let cache = DataCache(directory: root + "/cache")
        let first = try cache.prepare(config, objective: objective, includeTest: true, scaler: nil, classNames: nil)
        guard case .written(let path) = first else { return XCTFail("expected a written file, got \(first)") }
        XCTAssertTrue(path.hasPrefix(root + "/cache/data-") && path.hasSuffix(".nndata"), path)
        XCTAssertEqual(try cache.prepare(config, objective: objective, includeTest: true, scaler: nil, classNames: nil),
                       .found(path: path))

        let loaded = try DataLoading.prepare(config, objective: objective, includeTest: true)
        let mapped = try XCTUnwrap(cache.map(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil))
        XCTAssertTrue(mapped.training.features.isMapped)
        XCTAssertEqual(mapped.training.features, loaded.training.features)
        XCTAssertEqual(mapped.training.labels, loaded.training.labels)
        XCTAssertEqual(mapped.validation?.features, loaded.validation?.features)
        XCTAssertEqual(mapped.test?.features, loaded.test?.features)
        XCTAssertEqual(mapped.test?.count, 10)
        XCTAssertEqual(mapped.scaler, loaded.scaler)
        XCTAssertEqual(DataFingerprint(mapped), DataFingerprint(loaded))
        XCTAssertEqual(mapped.training.location(ofSample: 2), loaded.training.location(ofSample: 2))
    }

    func testAnotherConfigOrAChangedFileNamesAnotherFile() throws {
        let root = temporaryDirectory()
        let config = try idxConfig(in: root + "/data", count: 20)
        let objective = try config.objective()
        let cache = DataCache(directory: root + "/cache")
        let path = try cache.path(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil).path
        var other = config
        other.data.validationSplit = 0.5
        XCTAssertNotEqual(try cache.path(for: other, objective: objective, includeTest: true, scaler: nil, classNames: nil).path, path)
        XCTAssertNotEqual(try cache.path(for: config, objective: objective, includeTest: false, scaler: nil, classNames: nil).path, path)
        _ = try cache.prepare(config, objective: objective, includeTest: true, scaler: nil, classNames: nil)
        // Rewriting a source file (same size, new modification time) makes the old file stale.
        let images = root + "/data/images.idx"
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: images)
        XCTAssertNotEqual(try cache.path(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil).path, path)
        XCTAssertNil(try cache.map(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil))
        try FileManager.default.removeItem(atPath: images)
        assertThrows(try cache.path(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil),
                     contains: "images.idx: cannot read")
    }

    func testAnUnwritableCacheIsUnavailableNotAnError() throws {
        let root = temporaryDirectory()
        let config = try idxConfig(in: root + "/data", count: 8)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/file"))
        let cache = DataCache(directory: root + "/file/cache")
        let outcome = try cache.prepare(config, objective: try config.objective(), includeTest: true, scaler: nil, classNames: nil)
        guard case .unavailable(let reason) = outcome else { return XCTFail("expected unavailable, got \(outcome)") }
        XCTAssertTrue(reason.contains(root + "/file/cache"), reason)
    }

    func testOnlyFileDataOfAMebibyteOrMoreIsShared() throws {
        let root = temporaryDirectory()
        XCTAssertFalse(DataCache.applies(to: try idxConfig(in: root + "/small", count: 100)))  // 0.3 MiB
        XCTAssertTrue(DataCache.applies(to: try idxConfig(in: root + "/large", count: 400)))  // 1.3 MiB with the test set
        XCTAssertFalse(DataCache.applies(to: try Presets.config("spiral")))
    }

    func testIDXIsWrittenWithoutLoadingAndByteForByteAsLoaded() throws {
        let root = temporaryDirectory()
        var config = try idxConfig(in: root + "/data", count: 41, validationSplit: 0.2)
        try gzip(root + "/data/images.idx")
        config.data.train = .idx(images: root + "/data/images.idx.gz", labels: root + "/data/labels.idx", limit: nil)
        XCTAssertTrue(DataCache.streams(config))
        let objective = try config.objective()
        let fixed = FeatureScaler(method: .minmax, offsets: [Float](repeating: 3, count: 784),
                                  factors: [Float](repeating: 0.5, count: 784))
        for (method, scaler) in [(ScaleMethod.standardize, nil), (.minmax, nil), (.none, nil), (.minmax, fixed)] {
            config.data.scale = method
            var loaded = DataCache(directory: root + "/loaded-\(method)-\(scaler != nil)")
            loaded.streaming = false
            var streamed = DataCache(directory: root + "/streamed-\(method)-\(scaler != nil)")
            streamed.chunkBytes = 3 * 784 * 4  // 3 rows a chunk: 33 training rows end in a partial one
            guard case .written(let a) = try loaded.prepare(config, objective: objective, includeTest: true, scaler: scaler, classNames: nil),
                  case .written(let b) = try streamed.prepare(config, objective: objective, includeTest: true, scaler: scaler, classNames: nil)
            else { return XCTFail("both caches should be written") }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a)), try Data(contentsOf: URL(fileURLWithPath: b)),
                           "scale \(method), fixed scaler \(scaler != nil)")
            let data = try DataLoading.prepare(config, objective: objective, includeTest: true, scaler: scaler)
            let mapped = try XCTUnwrap(streamed.map(for: config, objective: objective, includeTest: true, scaler: scaler, classNames: nil))
            XCTAssertEqual(mapped.fingerprint, DataFingerprint(data), "the recorded fingerprint is that of the rows")
            XCTAssertEqual(mapped.training.features, data.training.features)
            XCTAssertEqual(mapped.validation?.count, 8)
            XCTAssertEqual(mapped.scaler, data.scaler)
        }
    }

    func testAStreamedWriteRefusesWhatLoadingRefusesAndLeavesNoFile() throws {
        let root = temporaryDirectory()
        var config = try idxConfig(in: root + "/data", count: 30)
        let objective = try config.objective()
        let images = root + "/data/images.idx"
        // Cut short in the images of the validation tail: found while writing.
        let whole = try Data(contentsOf: URL(fileURLWithPath: images))
        try whole.prefix(16 + 27 * 784).write(to: URL(fileURLWithPath: root + "/data/cut.idx"))
        try gzip(root + "/data/cut.idx")
        let labels = root + "/data/labels.idx"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: labels)))
        bytes[8 + 5] = 12
        try Data(bytes).write(to: URL(fileURLWithPath: root + "/data/bad-labels.idx"))
        let cases: [(DataSource, String)] = [
            (.idx(images: root + "/data/cut.idx.gz", labels: labels, limit: nil), "truncated"),
            (.idx(images: root + "/data/cut.idx.gz", labels: labels, limit: 5), "truncated"),
            (.idx(images: root + "/data/cut.idx", labels: labels, limit: nil), "truncated"),
            (.idx(images: images, labels: root + "/data/bad-labels.idx", limit: nil), "item 5"),
            (.idx(images: labels, labels: labels, limit: nil), "not an IDX image file"),
        ]
        for (source, text) in cases {
            config.data.train = source
            var expected = ""
            XCTAssertThrowsError(try DataLoading.prepare(config, objective: objective, includeTest: true)) {
                expected = ($0 as? UserError)?.message ?? "\($0)"
            }
            XCTAssertTrue(expected.contains(text), expected)
            let directory = root + "/cache-\(text)"
            XCTAssertThrowsError(try DataCache(directory: directory).prepare(config, objective: objective, includeTest: true,
                                                                            scaler: nil, classNames: nil)) {
                XCTAssertEqual(($0 as? UserError)?.message, expected)
            }
            let left = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            XCTAssertEqual(left, [], "nothing is left of a write that failed")
        }
    }

    func testACacheDiskTooSmallForTheDataIsNamed() throws {
        let root = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let cache = DataCache(directory: root + "/not/yet/made")
        let file = root + "/not/yet/made/data-0.nndata"
        XCTAssertNil(cache.spaceShortfall(for: DataShape(samples: 1000, featureCount: 784, labelWidth: 1), path: file))
        let huge = DataShape(samples: 4_000_000_000, featureCount: 1 << 20, labelWidth: 1)  // 16 PiB
        let reason = try XCTUnwrap(cache.spaceShortfall(for: huge, path: file))
        XCTAssertTrue(reason.contains(root + "/not/yet/made") && reason.contains("too little"), reason)
        // A file already written needs no more room.
        try FileManager.default.createDirectory(atPath: root + "/not/yet/made", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        XCTAssertNil(cache.spaceShortfall(for: huge, path: file))
        // A relative directory is judged by the file system it would be made on.
        XCTAssertNotNil(DataCache(directory: "no-such-cache-dir/a").spaceShortfall(for: huge, path: "no-such-cache-dir/a/f"))
    }

    /// Compresses `path` to `path.gz` with gzip(1), keeping the original.
    private func gzip(_ path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-k", "-f", "-n", path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
    }

    private func assertThrows<T>(_ body: @autoclosure () throws -> T, contains text: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) {
            XCTAssertTrue(($0 as? UserError)?.message.contains(text) == true, "\($0)", file: file, line: line)
        }
    }
}
