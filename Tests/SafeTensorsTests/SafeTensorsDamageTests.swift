import Foundation

import SafeTensors
import XCTest

/// Damaged and hostile files: each must give a one-line `FileError` that starts
/// with the path and says what is wrong, never a crash or a huge allocation.
final class SafeTensorsDamageTests: XCTestCase {
    let path = "runs/x/model.safetensors"

    private func assertRejected(_ bytes: [UInt8], _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            let decoded = try SafeTensors.decode(bytes, path: path)
            XCTFail("accepted a damaged file: \(decoded)", file: file, line: line)
        } catch let error as FileError {
            XCTAssertTrue(error.message.hasPrefix(path + ": "), error.message, file: file, line: line)
            XCTAssertFalse(error.message.contains("\n"), "one line: \(error.message)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.message.contains(fragment), "'\(fragment)' missing from: \(error.message)", file: file, line: line)
            }
        } catch {
            XCTFail("not a FileError: \(error)", file: file, line: line)
        }
    }

    private func tensor(_ name: String, _ shape: String, _ begin: Int, _ end: Int, dtype: String = "F32") -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
    }

    private func valid() -> [UInt8] {
        SafeTensorsFile(tensors: [
            NamedTensor(name: "w", shape: [16, 16], values: (0..<256).map(Float.init)),
            NamedTensor(name: "b", shape: [16], values: [Float](repeating: 0.5, count: 16)),
        ], metadata: ["k": "v"]).encoded()
    }

    private var headerLength: Int {
        Int(valid()[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
    }

    // MARK: - Truncation

    func testTruncatedInsideTheLength() {
        assertRejected([], ["truncated", "0 bytes"])
        assertRejected(Array(valid()[..<5]), ["truncated", "5 bytes"])
    }

    func testTruncatedInsideTheHeader() {
        let bytes = valid()
        assertRejected(Array(bytes[..<8]), ["truncated", "header length is \(headerLength) bytes but only 0 follow"])
        assertRejected(Array(bytes[..<(8 + headerLength / 2)]), ["truncated", "but only \(headerLength / 2) follow"])
    }

    func testTruncatedInsideTheData() {
        let bytes = valid()
        let start = 8 + headerLength
        assertRejected(Array(bytes[..<start]), ["truncated: the header promises 1088 bytes of tensor data but the file holds 0 bytes"])
        assertRejected(Array(bytes[..<(start + 1000)]), ["truncated: the header promises 1088 bytes of tensor data but the file holds 1000 bytes"])
        assertRejected(Array(bytes.dropLast()), ["truncated", "1087 bytes"])
    }

    func testTruncationMessageInKiB() {
        let header = "{" + tensor("w", "[240640]", 0, 962_560) + "}"
        assertRejected(handBuiltFile(header: header, data: [UInt8](repeating: 0, count: 12 * 1024)),
                       ["truncated: the header promises 940 KiB of tensor data but the file holds 12 KiB"])
    }

    // MARK: - Header length and JSON

    func testAbsurdHeaderLengthIsRejectedBeforeAllocating() {
        var bytes = valid()
        withUnsafeBytes(of: (UInt64(1) << 62).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        assertRejected(bytes, ["header length 4611686018427387904", "100 MiB limit"])
        bytes.replaceSubrange(0..<8, with: [UInt8](repeating: 0xFF, count: 8))
        assertRejected(bytes, ["header length 18446744073709551615"])
    }

    func testInvalidJSON() {
        assertRejected(handBuiltFile(header: "{\"a\":", data: []), ["not a JSON object", "invalid JSON at byte 13", "unexpected end of header"])
        assertRejected(handBuiltFile(header: "{\"a\":{}} x", data: []), ["not a JSON object", "after the end"])
        assertRejected(handBuiltFile(header: "[1, 2]", data: []), ["an array, not a JSON object"])
        assertRejected(handBuiltFile(header: "{\"a\" 1}", data: []), ["not a JSON object"])
        assertRejected(handBuiltFile(header: "{\"a\":\"\u{01}\"}", data: []), ["control character"])
        assertRejected(handBuiltFile(header: "{\"a\":\"\\ud800\"}", data: []), ["unpaired surrogate"])
        assertRejected(handBuiltFile(header: String(repeating: "[", count: 100_000), data: []), ["nested more than"])
        assertRejected(withUnsafeBytes(of: UInt64(2).littleEndian) { Array($0) } + [0x7B, 0xFF], ["not valid UTF-8"])
    }

    // MARK: - Entries

    func testNonF32DType() {
        for dtype in ["F16", "BF16", "F64", "I64"] {
            let header = "{" + tensor("layers.0.weight", "[2]", 0, 4, dtype: dtype) + "}"
            assertRejected(handBuiltFile(header: header, data: [0, 0, 0, 0]), ["tensor 'layers.0.weight' has dtype \(dtype)", "only F32"])
        }
    }

    func testOffsetsOutOfBounds() {
        let data = littleEndianBytes([1, 2])
        assertRejected(handBuiltFile(header: "{" + tensor("a", "[2]", 4, 12) + "}", data: data), ["truncated", "promises 12 bytes", "holds 8 bytes", "tensor 'a' has data_offsets [4, 12]"])
        assertRejected(handBuiltFile(header: "{" + tensor("a", "[2]", 8, 0) + "}", data: data), ["tensor 'a'", "end before they begin"])
        assertRejected(handBuiltFile(header: "{" + tensor("a", "[2]", 0, 8) + "," + tensor("b", "[0]", 9_223_372_036_854_775_807, 9_223_372_036_854_775_807) + "}", data: data),
                       ["truncated"])
        assertRejected(handBuiltFile(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", data: data),
                       ["tensor 'a'", "data_offsets", "not a pair of non-negative integers"])
    }

    func testOverlappingOffsets() {
        let header = "{" + tensor("a", "[2]", 0, 8) + "," + tensor("b", "[2]", 4, 12) + "}"
        assertRejected(handBuiltFile(header: header, data: littleEndianBytes([1, 2, 3])), ["tensor 'b' (bytes 4..<12) overlaps 'a' (bytes 0..<8)"])
        let same = "{" + tensor("a", "[2]", 0, 8) + "," + tensor("b", "[2]", 0, 8) + "}"
        assertRejected(handBuiltFile(header: same, data: littleEndianBytes([1, 2])), ["overlap"])
    }

    func testHolesAndTrailingBytes() {
        let hole = "{" + tensor("a", "[2]", 0, 8) + "," + tensor("b", "[2]", 12, 20) + "}"
        assertRejected(handBuiltFile(header: hole, data: littleEndianBytes([1, 2, 3, 4, 5])), ["bytes 8..<12 of the data section belong to no tensor"])
        let late = "{" + tensor("a", "[1]", 4, 8) + "}"
        assertRejected(handBuiltFile(header: late, data: littleEndianBytes([1, 2])), ["bytes 0..<4"])
        let short = "{" + tensor("a", "[1]", 0, 4) + "}"
        assertRejected(handBuiltFile(header: short, data: littleEndianBytes([1, 2])), ["4 bytes after the last tensor belong to no tensor"])
    }

    func testShapeAndOffsetSizeMismatch() {
        let header = "{" + tensor("a", "[3]", 0, 8) + "}"
        assertRejected(handBuiltFile(header: header, data: littleEndianBytes([1, 2])), ["tensor 'a'", "shape [3] needs 12 bytes", "span 8"])
    }

    func testBadShapes() {
        let data = littleEndianBytes([1, 2])
        for shape in ["[-2]", "[2.0]", "[2e0]", "[\"2\"]", "[null]", "[1, true]"] {
            assertRejected(handBuiltFile(header: "{" + tensor("a", shape, 0, 8) + "}", data: data), ["tensor 'a'", "non-negative integer"])
        }
        assertRejected(handBuiltFile(header: "{" + tensor("a", "[4611686018427387904, 4611686018427387904]", 0, 8) + "}", data: data),
                       ["tensor 'a': invalid shape [4611686018427387904, 4611686018427387904]: too large to exist"])
        assertRejected(handBuiltFile(header: "{" + tensor("a", "[2305843009213693952]", 0, 8) + "}", data: data), ["invalid shape [2305843009213693952]: too large to exist"])
        assertRejected(handBuiltFile(header: "{" + tensor("a", "2", 0, 8) + "}", data: data), ["\"shape\" is not an array"])
    }

    func testMissingFieldsAndWrongKinds() {
        assertRejected(handBuiltFile(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", data: littleEndianBytes([1, 2])), ["tensor 'a' has no \"data_offsets\""])
        assertRejected(handBuiltFile(header: "{\"a\":[1]}", data: []), ["tensor 'a' is an array"])
        assertRejected(handBuiltFile(header: "{\"a\":{\"dtype\":32,\"shape\":[],\"data_offsets\":[0,4]}}", data: [0, 0, 0, 0]), ["\"dtype\" is not a string"])
    }

    func testDuplicates() {
        let twice = "{" + tensor("a", "[1]", 0, 4) + "," + tensor("a", "[1]", 4, 8) + "}"
        assertRejected(handBuiltFile(header: twice, data: littleEndianBytes([1, 2])), ["names 'a' twice"])
        let meta = "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"
        assertRejected(handBuiltFile(header: meta, data: []), ["metadata 'k' appears twice"])
    }

    func testMetadataMustBeStrings() {
        assertRejected(handBuiltFile(header: "{\"__metadata__\":{\"epoch\":3}}", data: []), ["metadata 'epoch' is a number, not a string"])
        assertRejected(handBuiltFile(header: "{\"__metadata__\":[]}", data: []), ["\"__metadata__\" is an array"])
    }

    // MARK: - Checksum

    func testFlippedBitInDataFailsTheChecksum() {
        let good = valid()
        let crc = CRC32C.hex(CRC32C.checksum(Array(good[(8 + headerLength)...])))
        for index in [8 + headerLength, 8 + headerLength + 500, good.count - 1] {
            var bytes = good
            bytes[index] ^= 0x10
            let actual = CRC32C.hex(CRC32C.checksum(Array(bytes[(8 + headerLength)...])))
            assertRejected(bytes, ["checksum mismatch (data section CRC-32C \(actual), header says \(crc)): the file is damaged"])
        }
    }

    func testChangedChecksumInHeaderIsCaught() throws {
        let good = valid()
        let header = String(decoding: good[8..<(8 + headerLength)], as: UTF8.self)
        let crc = CRC32C.hex(CRC32C.checksum(Array(good[(8 + headerLength)...])))
        let forged = header.replacingOccurrences(of: crc, with: "0badf00d")
        XCTAssertNotEqual(forged, header)
        assertRejected(Array(good[..<8]) + Array(forged.utf8) + Array(good[(8 + headerLength)...]), ["checksum mismatch", "header says 0badf00d"])
    }

    // MARK: - Reading from disk

    func testReadErrorsNameThePath() throws {
        let directory = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try SafeTensors.read(path: directory + "/absent.safetensors")) { error in
            XCTAssertEqual((error as? FileError)?.message, directory + "/absent.safetensors: no such file")
        }
        XCTAssertThrowsError(try SafeTensors.read(path: directory)) { error in
            XCTAssertEqual((error as? FileError)?.message, directory + ": is a directory, not a safetensors file")
        }
        let truncated = directory + "/t.safetensors"
        try Data(valid().dropLast(10)).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try SafeTensors.read(path: truncated)) { error in
            XCTAssertTrue((error as? FileError)?.message.hasPrefix(truncated + ": truncated") ?? false, "\(error)")
        }
    }
}
