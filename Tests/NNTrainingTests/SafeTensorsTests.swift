import Foundation
import XCTest
import NNCore
@testable import NNTraining

final class SafeTensorsTests: XCTestCase {
    func temporary() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    let sample = SafeTensorsFile(tensors: [
        NamedTensor(name: "layers.0.weight", shape: [2, 3], values: [1, -2, 3.5, 0, 1e-30, -7]),
        NamedTensor(name: "layers.0.bias", shape: [2], values: [0.25, -0.5]),
        NamedTensor(name: "empty", shape: [0, 4], values: []),
        NamedTensor(name: "odd \"name\"\n\\", shape: [1], values: [42]),
    ], metadata: ["config": "{\"a\": [1, 2]}", "epoch": "3"])

    func testCRC32CKnownValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let whole = CRC32C.checksum(bytes)
        let split = bytes.withUnsafeBytes { b in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[333...]),
                            continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[..<333])))
        }
        XCTAssertEqual(whole, split)
    }

    func testRoundTripIsExactAndDeterministic() throws {
        let bytes = sample.encoded()
        XCTAssertEqual(bytes, sample.encoded(), "byte-identical encodings")
        let headerLength = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "data section 8-byte aligned")
        let decoded = try SafeTensors.decode(bytes, path: "x")
        XCTAssertEqual(decoded.tensors.sorted { $0.name < $1.name }, sample.tensors.sorted { $0.name < $1.name })
        XCTAssertEqual(decoded.metadata["config"], "{\"a\": [1, 2]}")
        XCTAssertEqual(decoded.metadata["epoch"], "3")
        XCTAssertNotNil(decoded.metadata[SafeTensorsFile.checksumKey])

        // The header is plain JSON with the spec's fields.
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<8 + headerLength])) as? [String: Any])
        let bias = try XCTUnwrap(header["layers.0.bias"] as? [String: Any])
        XCTAssertEqual(bias["dtype"] as? String, "F32")
        XCTAssertEqual(bias["shape"] as? [Int], [2])
        let offsets = try XCTUnwrap(bias["data_offsets"] as? [Int])
        XCTAssertEqual(offsets[1] - offsets[0], 8)
    }

    /// A file spelled out byte by byte, independent of the encoder.
    func testReadsAHandWrittenFile() throws {
        let json = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}"#
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(json.utf8)
        bytes += [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]  // 1.0, 2.0 little-endian
        let file = try SafeTensors.decode(bytes, path: "hand.safetensors")
        XCTAssertEqual(file["a"], NamedTensor(name: "a", shape: [2], values: [1, 2]))
        XCTAssertEqual(file.metadata, ["k": "v"])
    }

    func assertDamaged(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.decode(bytes, path: "bad.safetensors"), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("bad.safetensors: "), message, file: file, line: line)
            XCTAssertTrue(message.contains(fragment), "'\(fragment)' not in: \(message)", file: file, line: line)
        }
    }

    func header(_ json: String, data: [UInt8]) -> [UInt8] {
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { bytes += $0 }
        return bytes + Array(json.utf8) + data
    }

    func testDamagedAndHostileFilesGiveOneClearError() {
        let good = sample.encoded()
        assertDamaged(Array(good.prefix(5)), "truncated")
        assertDamaged(Array(good.prefix(40)), "truncated")
        assertDamaged(Array(good.dropLast(3)), "truncated")
        var huge = good
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 62).littleEndian) { Array($0) })
        assertDamaged(huge, "beyond")
        assertDamaged(header("{not json", data: []), "not a JSON object")
        assertDamaged(header(#"{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#, data: [0, 0]), "dtype F16")
        assertDamaged(header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 8)),
                      "data_offsets")
        assertDamaged(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                             data: [UInt8](repeating: 0, count: 8)), "overlaps")
        assertDamaged(header(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                      "needs 12 bytes")
        assertDamaged(header(#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,
                             data: [UInt8](repeating: 0, count: 8)), "invalid shape")
        var flipped = good
        flipped[flipped.count - 5] ^= 0x10
        assertDamaged(flipped, "checksum mismatch")
    }

    func testAtomicWriteReplacesAndLeavesNoTemporaryFiles() throws {
        let dir = temporary()
        let path = dir + "/model.safetensors"
        try sample.write(to: path)
        var second = sample
        second.metadata["epoch"] = "4"
        try second.write(to: path)
        XCTAssertEqual(try SafeTensors.read(path: path).metadata["epoch"], "4")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["model.safetensors"])
        XCTAssertThrowsError(try sample.write(to: dir + "/missing/model.safetensors")) {
            XCTAssertTrue("\($0)".contains("missing/model.safetensors"), "\($0)")
        }
    }

    /// Files written here open in Python's safetensors, and the other way round.
    func testPythonSafetensorsInterop() throws {
        guard let python = ProcessInfo.processInfo.environment["NNTRAIN_PYTHON"] else {
            throw XCTSkip("NNTRAIN_PYTHON is not set (scripts/test sets it to a virtual environment with safetensors and numpy)")
        }
        func runPython(_ code: String) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", code]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, output)
        }
        let (probe, why) = try runPython("import safetensors.numpy, numpy")
        guard probe == 0 else { throw XCTSkip("\(python) cannot import safetensors and numpy: \(why)") }

        let dir = temporary()
        try sample.write(to: dir + "/swift.safetensors")
        let (status, output) = try runPython("""
            from safetensors.numpy import load_file
            from safetensors import safe_open
            t = load_file('\(dir)/swift.safetensors')
            print(t['layers.0.weight'].shape, t['layers.0.weight'].dtype, t['layers.0.weight'].ravel().tolist())
            print(t['layers.0.bias'].tolist(), t['empty'].shape)
            with safe_open('\(dir)/swift.safetensors', 'np') as f: print(f.metadata()['epoch'])
            """)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.split(separator: "\n").map(String.init),
                       ["(2, 3) float32 [1.0, -2.0, 3.5, 0.0, 1.0000000031710769e-30, -7.0]", "[0.25, -0.5] (0, 4)", "3"])

        let (written, log) = try runPython("""
            import numpy as np
            from safetensors.numpy import save_file
            save_file({'w': np.arange(6, dtype=np.float32).reshape(3, 2) / 4, 'b': np.array([-1.5], dtype=np.float32)},
                      '\(dir)/python.safetensors', metadata={'origin': 'numpy'})
            """)
        XCTAssertEqual(written, 0, log)
        let file = try SafeTensors.read(path: dir + "/python.safetensors")
        XCTAssertEqual(file["w"], NamedTensor(name: "w", shape: [3, 2], values: [0, 0.25, 0.5, 0.75, 1, 1.25]))
        XCTAssertEqual(file["b"]?.values, [-1.5])
        XCTAssertEqual(file.metadata["origin"], "numpy")
    }
}
