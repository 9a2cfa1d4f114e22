// Shared helpers: temporary files, IDX and gzip encoders, error assertions.

import CZlib
import Foundation
import NNCore
import XCTest

/// A temporary directory removed when the value is released.
final class TemporaryDirectory {
    /// The directory's path.
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/nndata-tests-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw UserError("cannot create a temporary directory") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `bytes` to `name` inside the directory and returns the full path.
    @discardableResult
    func write(_ bytes: [UInt8], to name: String) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// Writes UTF-8 `text` to `name` inside the directory and returns the full path.
    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        try write(Array(text.utf8), to: name)
    }
}

/// Gzip-compresses `bytes` with zlib (windowBits 31 = gzip wrapper).
func gzip(_ bytes: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    let status = deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY,
                               zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    precondition(status == Z_OK, "deflateInit2 failed: \(status)")
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
    var input = bytes
    let produced: Int = input.withUnsafeMutableBufferPointer { source in
        output.withUnsafeMutableBufferPointer { destination in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            stream.next_out = destination.baseAddress
            stream.avail_out = UInt32(destination.count)
            let result = deflate(&stream, Z_FINISH)
            precondition(result == Z_STREAM_END, "deflate did not finish: \(result)")
            return destination.count - Int(stream.avail_out)
        }
    }
    return Array(output[0..<produced])
}

/// Big-endian bytes of a UInt32.
func bigEndianBytes(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
}

/// An IDX image file: magic 0x00000803, count, rows, columns, pixels.
func idxImages(count: Int, rows: Int, columns: Int, pixels: [UInt8]) -> [UInt8] {
    bigEndianBytes(0x0803) + bigEndianBytes(UInt32(count)) + bigEndianBytes(UInt32(rows))
        + bigEndianBytes(UInt32(columns)) + pixels
}

/// An IDX label file: magic 0x00000801, count, labels.
func idxLabels(_ labels: [UInt8], count: Int? = nil) -> [UInt8] {
    bigEndianBytes(0x0801) + bigEndianBytes(UInt32(count ?? labels.count)) + labels
}

/// Asserts that `body` throws a `UserError` whose one-line message contains every string of `parts`.
func assertUserError<T>(_ body: @autoclosure () throws -> T, contains parts: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a UserError containing \(parts), but nothing was thrown", file: file, line: line)
    } catch let error as UserError {
        XCTAssertFalse(error.message.contains("\n"), "message spans lines: \(error.message)", file: file, line: line)
        for part in parts where !error.message.contains(part) {
            XCTFail("message \"\(error.message)\" lacks \"\(part)\"", file: file, line: line)
        }
    } catch {
        XCTFail("expected a UserError, got \(error)", file: file, line: line)
    }
}
