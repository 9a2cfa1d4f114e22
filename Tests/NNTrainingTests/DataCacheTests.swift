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

    /// A CSV file of `count` rows of five features in `directory`, its label
    /// column `label` third: class names (one with a line break inside
    /// quotes, so rows do not start one per line), integer classes, or
    /// regression targets; CRLF line ends and a blank line every eleventh row.
    private func csv(_ name: String, in directory: String, count: Int, labels: String, offset: Int = 0) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var text = "f0,f1,label,f2,f3,f4\r\n"
        for i in offset..<offset + count {
            let values = (0..<5).map { String(Float((i * 7 + $0 * 3) % 23) / 4 - 2) }
            let label: String
            switch labels {
            case "names": label = ["cat", "dog", "\"big\ncat\""][i % 3]
            case "indices": label = String(i % 3)
            default: label = String(Float(i % 17) / 8)
            }
            text += values[0...1].joined(separator: ",") + "," + label + "," + values[2...].joined(separator: ",") + "\r\n"
            if i % 11 == 10 { text += "\r\n" }
        }
        let path = directory + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func csvConfig(train: String, test: String?, labels: String, limit: Int? = nil,
                           classNames: [String]? = nil) throws -> RunConfig {
        let regression = labels == "targets"
        return try ConfigReader.parse("""
            data:
              train: {format: csv, path: \(train), label: label\(limit.map { ", limit: \($0)" } ?? "")}
            \(test.map { "  test: {format: csv, path: \($0), label: label}" } ?? "")
              validation_split: 0.2
              scale: standardize
            \(classNames.map { "  class_names: [\($0.joined(separator: ", "))]" } ?? "")
            model:
              layers:
                - dense: {units: \(regression ? 1 : 3), activation: \(regression ? "linear" : "softmax")}
            loss: \(regression ? "mse" : "sparse_categorical_crossentropy")
            task: \(regression ? "regression" : "classification")
            """, file: "c.yaml")
    }

    func testCSVIsWrittenWithoutLoadingAndByteForByteAsLoaded() throws {
        let root = temporaryDirectory()
        let fixed = FeatureScaler(method: .minmax, offsets: [1, 2, 3, 4, 5], factors: [0.5, 0.25, 2, 1, 1])
        let cases: [(labels: String, limit: Int?, classNames: [String]?, scaler: FeatureScaler?, fixedNames: [String]?)] = [
            ("names", nil, nil, nil, nil),
            ("names", 37, nil, nil, nil),  // class names from every row, 37 of them kept
            ("indices", nil, ["red", "green", "blue"], nil, nil),
            ("targets", nil, nil, nil, nil),
            ("names", nil, nil, fixed, ["\"big\ncat\"", "cat", "dog"].map { $0.replacingOccurrences(of: "\"", with: "") }),
        ]
        for (k, item) in cases.enumerated() {
            let directory = root + "/data-\(k)"
            let train = try csv("train.csv", in: directory, count: 46, labels: item.labels)
            let test = try csv("test.csv", in: directory, count: 9, labels: item.labels, offset: 100)
            var config = try csvConfig(train: train, test: test, labels: item.labels, limit: item.limit, classNames: item.classNames)
            for method in [ScaleMethod.standardize, .minmax] {
                config.data.scale = method
                XCTAssertTrue(DataCache.streams(config))
                let objective = try config.objective()
                var loaded = DataCache(directory: root + "/loaded-\(k)-\(method)")
                loaded.streaming = false
                var streamed = DataCache(directory: root + "/streamed-\(k)-\(method)")
                streamed.chunkBytes = 3 * 5 * 4  // 3 rows a chunk, ending in a partial one
                guard case .written(let a) = try loaded.prepare(config, objective: objective, includeTest: true,
                                                                scaler: item.scaler, classNames: item.fixedNames),
                      case .written(let b) = try streamed.prepare(config, objective: objective, includeTest: true,
                                                                  scaler: item.scaler, classNames: item.fixedNames)
                else { return XCTFail("both caches should be written (case \(k))") }
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a)), try Data(contentsOf: URL(fileURLWithPath: b)),
                               "case \(k), scale \(method)")
                let data = try DataLoading.prepare(config, objective: objective, includeTest: true, scaler: item.scaler,
                                                   classNames: item.fixedNames)
                let mapped = try XCTUnwrap(streamed.map(for: config, objective: objective, includeTest: true,
                                                        scaler: item.scaler, classNames: item.fixedNames))
                XCTAssertEqual(mapped.fingerprint, DataFingerprint(data), "case \(k)")
                XCTAssertEqual(mapped.training.features, data.training.features, "case \(k)")
                XCTAssertEqual(mapped.classNames, data.classNames, "case \(k)")
                XCTAssertEqual(mapped.validation?.location(ofSample: 2), data.validation?.location(ofSample: 2), "case \(k)")
                XCTAssertEqual(mapped.training.count + (mapped.validation?.count ?? 0), item.limit ?? 46, "case \(k)")
            }
            XCTAssertEqual(DataShape.expected(config), DataShape(samples: (item.limit ?? 46) + 9, featureCount: 5, labelWidth: 1))
        }
    }

    /// Once the cache file is written, the shape comes from it: a CSV file
    /// whose bytes changed behind an unchanged identity (size, inode and
    /// modification time, which name the cache file) is not read again.
    func testTheShapeOfCachedDataComesFromTheCacheFile() throws {
        let directory = temporaryDirectory()
        let train = try csv("train.csv", in: directory, count: 46, labels: "names")
        let config = try csvConfig(train: train, test: nil, labels: "names")
        let objective = try config.objective()
        let cache = DataCache(directory: directory + "/cache")
        XCTAssertNil(cache.shape(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil), "no file yet")
        guard case .written = try cache.prepare(config, objective: objective, includeTest: true, scaler: nil, classNames: nil) else {
            return XCTFail("the cache should be written")
        }
        let shape = DataShape(samples: 46, featureCount: 5, labelWidth: 1)
        XCTAssertEqual(DataShape.expected(config), shape)
        XCTAssertEqual(cache.shape(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil), shape)

        // Same size, same inode, same modification time, but blank lines only: a scan finds no record.
        var before = stat()
        XCTAssertEqual(stat(train, &before), 0)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: train))
        handle.write(Data(repeating: UInt8(ascii: "\n"), count: Int(before.st_size)))
        handle.closeFile()
        var times = [before.st_atim, before.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, train, &times, 0), 0)
        XCTAssertNotEqual(DataShape.expected(config), shape, "a scan sees the new bytes")
        XCTAssertEqual(cache.shape(for: config, objective: objective, includeTest: true, scaler: nil, classNames: nil), shape,
                       "the cache file answers without reading the CSV file")
    }

    func testAStreamedCSVWriteRefusesWhatLoadingRefusesAndLeavesNoFile() throws {
        let root = temporaryDirectory()
        let train = try csv("train.csv", in: root + "/data", count: 40, labels: "names")
        let test = try csv("test.csv", in: root + "/data", count: 9, labels: "names", offset: 100)
        let text = try String(contentsOfFile: train, encoding: .utf8)
        func variant(_ name: String, _ edit: (inout String) -> Void) throws -> String {
            var copy = text
            edit(&copy)
            let path = root + "/data/" + name
            try Data(copy.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let badNumber = try variant("number.csv") { $0 = $0.replacingOccurrences(of: "\r\n-0.75,", with: "\r\nx,") }
        let fourClasses = try variant("fox.csv") { $0 += "1,2,fox,3,4,5\r\n" }
        let wider = try csv("wider-test.csv", in: root + "/data", count: 9, labels: "names")
        let widened = try String(contentsOfFile: wider, encoding: .utf8).split(separator: "\r\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : $0 + ",0" }.joined(separator: "\r\n")
        try Data(widened.utf8).write(to: URL(fileURLWithPath: wider))
        let unknown = try csv("unknown-test.csv", in: root + "/data", count: 4, labels: "names")
        try Data(try String(contentsOfFile: unknown, encoding: .utf8).replacingOccurrences(of: "dog", with: "dgo").utf8)
            .write(to: URL(fileURLWithPath: unknown))
        let cases: [(train: String, test: String?, text: String)] = [
            (badNumber, test, "column 'f0': 'x' is not a number"),
            (fourClasses, test, "outside the output layer's 3 classes"),
            (train, wider, "the test set has 6 features but the training set has 5"),
            (train, unknown, "unknown class 'dgo'"),
        ]
        for (k, item) in cases.enumerated() {
            let config = try csvConfig(train: item.train, test: item.test, labels: "names")
            let objective = try config.objective()
            var expected = ""
            XCTAssertThrowsError(try DataLoading.prepare(config, objective: objective, includeTest: true)) {
                expected = ($0 as? UserError)?.message ?? "\($0)"
            }
            XCTAssertTrue(expected.contains(item.text), expected)
            let directory = root + "/cache-\(k)"
            var cache = DataCache(directory: directory)
            cache.chunkBytes = 3 * 5 * 4
            XCTAssertThrowsError(try cache.prepare(config, objective: objective, includeTest: true, scaler: nil, classNames: nil)) {
                XCTAssertEqual(($0 as? UserError)?.message, expected)
            }
            let left = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            XCTAssertEqual(left, [], "nothing is left of a write that failed (case \(k))")
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
