// The safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON header, then the tensors' raw little-endian bytes back to back. The
// header maps each tensor name to {"dtype", "shape", "data_offsets": [begin,
// end]} (offsets relative to the data section) plus an optional
// "__metadata__" object of strings. A file holds data only: it cannot run code.

import Foundation
import NNCore
#if canImport(Glibc)
import Glibc
#endif

/// One named Float32 tensor.
public struct NamedTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// The contents of a safetensors file (F32 tensors only).
public struct SafeTensorsFile: Equatable, Sendable {
    public var tensors: [NamedTensor]
    public var metadata: [String: String]

    public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`.
    public subscript(name: String) -> NamedTensor? { tensors.first { $0.name == name } }

    /// The metadata key holding the CRC-32C of the data section.
    public static let checksumKey = "data_crc32c"

    // MARK: - Encoding

    /// The file's bytes: deterministic (keys sorted, tensors in name order),
    /// header padded with spaces so the data starts 8-byte aligned, and the
    /// data section's CRC-32C added to the metadata.
    public func encoded() -> [UInt8] {
        let sorted = tensors.sorted { $0.name < $1.name }
        let dataSize = sorted.reduce(0) { $0 + $1.values.count * 4 }
        var data = [UInt8](repeating: 0, count: dataSize)
        var offsets: [(Int, Int)] = []
        var cursor = 0
        data.withUnsafeMutableBytes { out in
            for tensor in sorted {
                let bytes = tensor.values.count * 4
                tensor.values.withUnsafeBytes { source in
                    if bytes > 0 { (out.baseAddress! + cursor).copyMemory(from: source.baseAddress!, byteCount: bytes) }
                }
                // Stored little-endian; convert in place on a big-endian host.
                if UInt32(1).bigEndian == 1 {
                    for i in stride(from: cursor, to: cursor + bytes, by: 4) {
                        let v = out.load(fromByteOffset: i, as: UInt32.self)
                        out.storeBytes(of: v.byteSwapped, toByteOffset: i, as: UInt32.self)
                    }
                }
                offsets.append((cursor, cursor + bytes))
                cursor += bytes
            }
        }
        var meta = metadata
        meta[SafeTensorsFile.checksumKey] = String(format: "%08x", CRC32C.checksum(data))

        var header = "{\"__metadata__\":{"
        header += meta.keys.sorted().map { "\(jsonString($0)):\(jsonString(meta[$0]!))" }.joined(separator: ",")
        header += "}"
        for (tensor, (begin, end)) in zip(sorted, offsets) {
            header += ",\(jsonString(tensor.name)):{\"dtype\":\"F32\",\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(end)]}"
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var file = [UInt8]()
        file.reserveCapacity(8 + headerBytes.count + data.count)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file += $0 }
        file += headerBytes
        file += data
        return file
    }

    /// Writes the file atomically and durably (see `AtomicFile`).
    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }
}

/// Reading safetensors files defensively: every size and offset is checked
/// before anything is allocated or read, so a damaged or hostile file gives a
/// one-line error, never a crash or a huge allocation.
public enum SafeTensors {
    /// The largest header accepted.
    public static let maximumHeaderBytes = 100 << 20

    /// Reads and checks the file at `path`.
    public static func read(path: String) throws -> SafeTensorsFile {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw UserError("\(path): \(String(cString: strerror(errno))); give an existing safetensors file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("\(path): cannot read the file; check its permissions")
        }
        return try data.withUnsafeBytes { try decode($0, path: path) }
    }

    /// Parses and checks the bytes of a file.
    public static func decode(_ bytes: [UInt8], path: String) throws -> SafeTensorsFile {
        try bytes.withUnsafeBytes { try decode($0, path: path) }
    }

    /// Parses and checks the bytes of a file.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsFile {
        func fail(_ reason: String) -> UserError { UserError("\(path): \(reason)") }
        guard bytes.count >= 8 else {
            throw fail("truncated: \(bytes.count) bytes, too short for a safetensors header; the file is damaged")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderBytes) else {
            throw fail("header length \(declared) is beyond the \(maximumHeaderBytes >> 20) MiB limit; not a safetensors file, or damaged")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw fail("truncated: the header needs \(headerLength) bytes but only \(bytes.count - 8) follow; the file is damaged")
        }
        let headerData = Data(bytes[8..<8 + headerLength])
        guard let object = try? JSONSerialization.jsonObject(with: headerData), let header = object as? [String: Any] else {
            throw fail("the header is not a JSON object; the file is damaged")
        }
        let dataStart = 8 + headerLength
        let dataSize = bytes.count - dataStart

        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let dictionary = meta as? [String: Any] else { throw fail("__metadata__ is not an object of strings") }
            for (key, value) in dictionary {
                guard let text = value as? String else { throw fail("__metadata__ value of '\(key)' is not a string") }
                metadata[key] = text
            }
        }

        var entries: [(name: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any] else { throw fail("tensor '\(name)': entry is not an object") }
            guard let dtype = entry["dtype"] as? String else { throw fail("tensor '\(name)': no dtype") }
            guard dtype == "F32" else {
                throw fail("tensor '\(name)' has dtype \(dtype); nntrain reads F32 tensors only (convert with tensor.float())")
            }
            guard let shapeValues = entry["shape"] as? [Any], let offsetValues = entry["data_offsets"] as? [Any],
                  offsetValues.count == 2 else {
                throw fail("tensor '\(name)': shape or data_offsets missing")
            }
            let shape = try shapeValues.map { value -> Int in
                guard let n = (value as? NSNumber)?.int64Value, n >= 0, n <= Int64(Int32.max) else {
                    throw fail("tensor '\(name)': invalid shape \(shapeValues)")
                }
                return Int(n)
            }
            let offsets = try offsetValues.map { value -> Int in
                guard let n = (value as? NSNumber)?.int64Value, n >= 0, n <= Int64(dataSize) else {
                    throw fail("truncated or damaged: tensor '\(name)' has data_offsets \(offsetValues) but the data section holds \(dataSize) bytes")
                }
                return Int(n)
            }
            var elements = 1
            for dimension in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= dataSize / 4 + 1 else {
                    throw fail("tensor '\(name)': shape \(shape) is larger than the file")
                }
                elements = product
            }
            guard offsets[0] <= offsets[1], offsets[1] - offsets[0] == elements * 4 else {
                throw fail("tensor '\(name)': shape \(shape) needs \(elements * 4) bytes but data_offsets \(offsets) span \(offsets[1] - offsets[0])")
            }
            entries.append((name, shape, offsets[0], offsets[1]))
        }
        // The tensors must tile the data section exactly: no overlap, no gap.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for entry in entries {
            guard entry.begin == cursor else {
                throw fail(entry.begin < cursor ? "tensor '\(entry.name)' overlaps another tensor's data; the file is damaged"
                                                : "a gap before tensor '\(entry.name)' in the data section; the file is damaged")
            }
            cursor = entry.end
        }
        guard cursor == dataSize else {
            throw fail(cursor < dataSize ? "\(dataSize - cursor) bytes after the last tensor; the file is damaged"
                                         : "truncated: the tensors need \(cursor) bytes of data but the file holds \(dataSize)")
        }

        let data = UnsafeRawBufferPointer(rebasing: bytes[dataStart...])
        if let expected = metadata[SafeTensorsFile.checksumKey] {
            let actual = String(format: "%08x", CRC32C.checksum(data))
            guard actual == expected else {
                throw fail("checksum mismatch (data section CRC-32C \(actual), header says \(expected)): the file is damaged")
            }
        }
        let tensors = entries.map { entry -> NamedTensor in
            let count = (entry.end - entry.begin) / 4
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { out in
                if count > 0 { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: data[entry.begin..<entry.end])) }
            }
            if UInt32(1).bigEndian == 1 { values = values.map { Float(bitPattern: $0.bitPattern.byteSwapped) } }
            return NamedTensor(name: entry.name, shape: entry.shape, values: values)
        }
        return SafeTensorsFile(tensors: tensors.sorted { $0.name < $1.name }, metadata: metadata)
    }
}

/// JSON string literal with the escapes JSON requires.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
