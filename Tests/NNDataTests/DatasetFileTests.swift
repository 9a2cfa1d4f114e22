import Foundation
import NNCore
@testable import NNData
import XCTest

final class DatasetFileTests: XCTestCase {
    /// Five samples of three features with one label each, from a CSV-like origin.
    let data = Dataset(name: "five", features: (0..<15).map { Float($0) + 0.25 }, featureCount: 3,
                       labels: [0, 1, 2, 1, 0], labelWidth: 1, classNames: ["a", "b", "c"])

    func testRoundTripMapsTheSameRows() throws {
        let directory = try TemporaryDirectory()
        var named = data
        named.featureNames = ["x", "y", "z"]
        let (training, validation) = named.split(validationFraction: 0.4)
        let path = directory.path + "/d.nndata"
        try DatasetFile.write([training, nil, validation], metadata: "{\"k\": 1}", to: path)
        let (datasets, metadata) = try DatasetFile.read(path)
        XCTAssertEqual(metadata, "{\"k\": 1}")
        XCTAssertEqual(datasets.count, 3)
        XCTAssertNil(datasets[1])
        let mapped = try XCTUnwrap(datasets[0]), tail = try XCTUnwrap(datasets[2])
        XCTAssertTrue(mapped.features.isMapped)
        XCTAssertEqual(mapped.features, training.features)
        XCTAssertEqual(mapped.labels, training.labels)
        XCTAssertEqual(mapped.featureCount, 3)
        XCTAssertEqual(mapped.classNames, ["a", "b", "c"])
        XCTAssertEqual(mapped.featureNames, ["x", "y", "z"])
        XCTAssertEqual(Array(tail.features), [9.25, 10.25, 11.25, 12.25, 13.25, 14.25])
        // Locations stay those of the source the rows came from.
        XCTAssertEqual(tail.location(ofSample: 0), "five sample 3")
        // No temporary file is left next to it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["d.nndata"])
    }

    func testMappedRowsGatherSliceAndCopyOnWrite() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/d.nndata"
        try DatasetFile.write([data], metadata: "", to: path)
        var mapped = try XCTUnwrap(DatasetFile.read(path).datasets[0])
        var rows = [Float](repeating: 0, count: 6), labels = [Float](repeating: 0, count: 2)
        [Int32(4), 1].withUnsafeBufferPointer { mapped.gather(indices: $0, features: &rows, labels: &labels) }
        XCTAssertEqual(rows, [12.25, 13.25, 14.25, 3.25, 4.25, 5.25])
        XCTAssertEqual(labels, [0, 1])
        let prefix = mapped.prefix(2)
        XCTAssertTrue(prefix.features.isMapped, "a slice of mapped rows is a view, not a copy")
        XCTAssertEqual(Array(prefix.features), (0..<6).map { Float($0) + 0.25 })
        let validation = mapped.splitOffValidation(fraction: 0.2)
        XCTAssertEqual(mapped.count, 4)
        XCTAssertEqual(Array(validation.features), [12.25, 13.25, 14.25])

        // Writing copies the rows into memory; the file keeps its values.
        mapped.features.withUnsafeMutableBufferPointer { $0[0] = -1 }
        XCTAssertFalse(mapped.features.isMapped)
        XCTAssertEqual(mapped.features[0], -1)
        XCTAssertEqual(try XCTUnwrap(DatasetFile.read(path).datasets[0]).features[0], 0.25)
    }

    func testDamagedFilesAreRefusedInOneLine() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/d.nndata"
        try DatasetFile.write([data], metadata: "m", to: path)
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // The 60 bytes of features start at 4096, padded to a page; the header follows them.
        XCTAssertGreaterThan(whole.count, 8192)
        XCTAssertEqual(whole[8192], UInt8(ascii: "{"))
        let cut = try directory.write(Array(whole[0..<(4096 + 20)]), to: "cut.nndata")
        assertUserError(try DatasetFile.read(cut), contains: ["cut.nndata", "not a complete dataset cache", "delete it"])
        let noHeader = try directory.write(Array(whole[0..<8192]), to: "noheader.nndata")
        assertUserError(try DatasetFile.read(noHeader), contains: ["noheader.nndata", "not a complete dataset cache"])
        var wrongMagic = whole
        wrongMagic[0] = UInt8(ascii: "X")
        let other = try directory.write(wrongMagic, to: "other.nndata")
        assertUserError(try DatasetFile.read(other), contains: ["other.nndata", "no NNDATA02 header"])
        var badHeader = whole
        badHeader[8192] = UInt8(ascii: "]")
        let header = try directory.write(badHeader, to: "header.nndata")
        assertUserError(try DatasetFile.read(header), contains: ["header.nndata", "unreadable header"])
        let empty = try directory.write([], to: "empty.nndata")
        assertUserError(try DatasetFile.read(empty), contains: ["empty.nndata", "is empty"])
        assertUserError(try DatasetFile.read(directory.path + "/absent.nndata"), contains: ["absent.nndata", "cannot open"])
    }

    func testOnlyTemporariesOfDeadWritersOnThisHostAreRemoved() throws {
        let directory = try TemporaryDirectory()
        // A pid above the kernel's maximum (4194304) belongs to no process.
        let dead = DatasetFile.temporaryName(for: directory.path + "/a.nndata", process: 4_194_305)
        let alive = DatasetFile.temporaryName(for: directory.path + "/b.nndata", process: getpid())
        for path in [dead, alive, directory.path + "/c.nndata.otherhost.4194305.tmp", directory.path + "/d.nndata"] {
            FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        }
        XCTAssertEqual(DatasetFile.removeAbandonedTemporaries(in: directory.path), [(dead as NSString).lastPathComponent])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(),
                       ["b.nndata.\(DatasetFile.hostName).\(getpid()).tmp", "c.nndata.otherhost.4194305.tmp", "d.nndata"])
    }

    func testAnUnwritableDirectoryIsOneLine() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("x", to: "file")
        assertUserError(try DatasetFile.write([data], metadata: "", to: file + "/d.nndata"),
                        contains: ["d.nndata", "cannot create the dataset cache", "--data-cache none"])
    }

    func testHeldRowsBehaveLikeAnArray() {
        var rows: FloatRows = [1, 2, 3, 4]
        XCTAssertFalse(rows.isMapped)
        XCTAssertEqual(rows.count, 4)
        XCTAssertEqual(Array(rows.rows(1..<3)), [2, 3])
        rows.removeLast(1)
        XCTAssertEqual(rows, [1, 2, 3])
        XCTAssertNotEqual(rows, [1, 2, 4])
        let copy = rows
        rows.withUnsafeMutableBufferPointer { $0[0] = 9 }
        XCTAssertEqual(copy, [1, 2, 3], "values are copied on write")
        XCTAssertEqual(rows, [9, 2, 3])
    }
}
