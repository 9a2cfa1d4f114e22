import Foundation

import SafeTensors
import XCTest

// MARK: - Helpers shared by the safetensors tests

/// A file from a header spelled out by hand and raw data bytes (no padding added).
func handBuiltFile(header: String, data: [UInt8]) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    return withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) } + headerBytes + data
}

/// Little-endian F32 bytes, spelled independently of the encoder.
func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value -> [UInt8] in
        let bits = value.bitPattern
        return [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
    }
}

/// A fresh empty directory, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "nntrain-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

// MARK: - Format

/// Encoding, decoding and the exact bytes of the safetensors format.
final class SafeTensorsFormatTests: XCTestCase {
    let path = "runs/x/model.safetensors"

    private func sample() -> SafeTensorsFile {
        SafeTensorsFile(tensors: [
            NamedTensor(name: "layers.1.weight", shape: [2, 3], values: [1, -2, 3.5, .pi, -0.0, 1e-30]),
            NamedTensor(name: "layers.0.bias", shape: [3], values: [0.25, .greatestFiniteMagnitude, -.leastNonzeroMagnitude]),
            NamedTensor(name: "empty", shape: [0, 4], values: []),
            NamedTensor(name: "scalar", shape: [], values: [42]),
            NamedTensor(name: "quote\" back\\slash\nnewline\ttab\u{01}ctl é 中", shape: [1], values: [7]),
        ], metadata: ["config": "{\"lr\": 0.1}\n", "ünï": "line1\nline2\u{1F}", "empty": ""])
    }

    /// What decoding `file.encoded()` gives: tensors sorted by name, the checksum in the metadata.
    private func expectedAfterRoundTrip(_ file: SafeTensorsFile, checksum: String) -> SafeTensorsFile {
        var copy = file
        copy.tensors.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        copy.metadata[SafeTensorsFile.checksumKey] = checksum
        return copy
    }

    /// The CRC-32C of the data section of an encoded file, computed from its header length.
    private func dataChecksum(_ bytes: [UInt8]) -> String {
        let headerLength = Int(bytes[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        return CRC32C.hex(CRC32C.checksum(Array(bytes[(8 + headerLength)...])))
    }

    func testRoundTrip() throws {
        let original = sample()
        let bytes = original.encoded()
        let decoded = try SafeTensors.decode(bytes, path: path)
        XCTAssertEqual(decoded, expectedAfterRoundTrip(original, checksum: dataChecksum(bytes)))
        XCTAssertEqual(decoded["empty"]?.shape, [0, 4])
        XCTAssertEqual(decoded["scalar"]?.values, [42])
        XCTAssertEqual(decoded["layers.1.weight"]?.values[4].sign, .minus, "-0.0 keeps its sign")
        XCTAssertNil(decoded["missing"])
        XCTAssertEqual(decoded.metadata[SafeTensorsFile.checksumKey]?.count, 8, "the verified checksum stays in the metadata")
    }

    func testEncodingIsDeterministicAndAligned() throws {
        let bytes = sample().encoded()
        var shuffled = sample()
        shuffled.tensors.reverse()
        XCTAssertEqual(shuffled.encoded(), bytes, "tensor order given does not matter")
        XCTAssertEqual(try SafeTensors.decode(bytes, path: path).encoded(), bytes, "re-encoding is byte-identical")

        let headerLength = bytes[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        XCTAssertEqual(headerLength % 8, 0)
        let header = try XCTUnwrap(String(bytes: bytes[8..<(8 + Int(headerLength))], encoding: .utf8))
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{"), header)
    }

    /// One tiny tensor written byte by byte: decoding must not depend on the encoder.
    func testDecodesHandBuiltFile() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let bytes: [UInt8] = [54, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]
        let file = try SafeTensors.decode(bytes, path: path)
        XCTAssertEqual(file, SafeTensorsFile(tensors: [NamedTensor(name: "a", shape: [2], values: [1, 2])]))

        // Whitespace the spec allows, and a checksum computed by the bitwise generator in CRC32CTests.
        let spaced = " {\n \"__metadata__\" : {\"data_crc32c\": \"28c0c9b1\", \"k\": \"v\\u00e9\\ud83d\\ude00\"},\n \"a\": {\"data_offsets\": [0, 8], \"shape\": [2], \"dtype\": \"F32\"}}   "
        let withMetadata = try SafeTensors.decode(handBuiltFile(header: spaced, data: littleEndianBytes([1, 2])), path: path)
        XCTAssertEqual(withMetadata.metadata, ["k": "vé😀", "data_crc32c": "28c0c9b1"])
        XCTAssertEqual(withMetadata["a"]?.values, [1, 2])
    }

    /// The encoder's exact output for the same tensor: the golden file of the format.
    func testEncodesExactBytes() throws {
        let file = SafeTensorsFile(tensors: [NamedTensor(name: "a", shape: [2], values: [1, 2])], metadata: ["note": "hi"])
        // CRC-32C of 00 00 80 3F 00 00 00 40 is 28c0c9b1 (bitwise reference); 108 header bytes pad to 112.
        let header = #"{"__metadata__":{"data_crc32c":"28c0c9b1","note":"hi"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"# + "    "
        let expected: [UInt8] = [112, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]
        XCTAssertEqual(file.encoded(), expected)
    }

    func testEncoderOutputParsesAsJSONWithRightOffsets() throws {
        let original = sample()
        let bytes = original.encoded()
        let headerLength = Int(bytes[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let metadata = try XCTUnwrap(json["__metadata__"] as? [String: String])
        XCTAssertEqual(metadata["config"], "{\"lr\": 0.1}\n")
        XCTAssertEqual(metadata["ünï"], "line1\nline2\u{1F}")
        let data = Array(bytes[(8 + headerLength)...])
        XCTAssertEqual(metadata["data_crc32c"], CRC32C.hex(CRC32C.checksum(data)))

        var spans: [(Int, Int)] = []
        for tensor in original.tensors {
            let entry = try XCTUnwrap(json[tensor.name] as? [String: Any], tensor.name)
            XCTAssertEqual(entry["dtype"] as? String, "F32")
            XCTAssertEqual(entry["shape"] as? [Int], tensor.shape)
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
            XCTAssertEqual(offsets.count, 2)
            XCTAssertEqual(offsets[1] - offsets[0], tensor.values.count * 4)
            XCTAssertEqual(Array(data[offsets[0]..<offsets[1]]), littleEndianBytes(tensor.values), tensor.name)
            spans.append((offsets[0], offsets[1]))
        }
        XCTAssertEqual(json.count, original.tensors.count + 1)
        // Sorted by name, packed back to back from 0 to the end of the data.
        let byName = original.tensors.indices.sorted { original.tensors[$0].name.utf8.lexicographicallyPrecedes(original.tensors[$1].name.utf8) }
        var offset = 0
        for i in byName {
            XCTAssertEqual(spans[i].0, offset, original.tensors[i].name)
            offset = spans[i].1
        }
        XCTAssertEqual(offset, data.count)
    }

    func testEncoderReplacesAGivenChecksum() throws {
        let file = SafeTensorsFile(tensors: [NamedTensor(name: "a", shape: [1], values: [3])], metadata: ["data_crc32c": "00000000"])
        XCTAssertNoThrow(try SafeTensors.decode(file.encoded(), path: path))
    }

    func testEmptyFile() throws {
        let file = SafeTensorsFile(tensors: [])
        XCTAssertEqual(try SafeTensors.decode(file.encoded(), path: path), SafeTensorsFile(tensors: [], metadata: ["data_crc32c": "00000000"]))
    }
}
