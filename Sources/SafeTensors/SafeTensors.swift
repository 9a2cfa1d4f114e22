// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, the header length, little-endian UInt64
//   [N bytes]  UTF-8 JSON: {"__metadata__": {string: string},
//                           NAME: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …}
//              trailing spaces allowed (used here to 8-byte-align the data)
//   [rest]     the data section; offsets are relative to its start, and the
//              tensors tile it exactly, with no holes or overlaps
//
// Only F32 is written and read. Files written here are deterministic (keys
// sorted by UTF-8 bytes, `__metadata__` first, data in the same order) and
// carry `data_crc32c` in the metadata, which the reader verifies.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif


// MARK: - Model

/// One named F32 tensor: row-major `values` with the given `shape`.
public struct NamedTensor: Equatable, Sendable {
    /// The tensor's key in the file, e.g. `layers.0.weight`.
    public var name: String
    /// Dimensions, outermost first; `[]` is a scalar holding one value.
    public var shape: [Int]
    /// Row-major values; `values.count` is the product of `shape`.
    public var values: [Float]

    /// A tensor; `values.count` must equal the product of `shape`.
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// The contents of a safetensors file: F32 tensors and string metadata.
public struct SafeTensorsFile: Equatable, Sendable {
    /// The tensors; `SafeTensors.decode` returns them sorted by name (UTF-8 byte order).
    public var tensors: [NamedTensor]
    /// The header's `__metadata__`. Decoding verifies `data_crc32c` (and keeps
    /// it here); encoding always recomputes it.
    public var metadata: [String: String]

    /// A file's contents; tensor names must be unique and not `__metadata__`.
    public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`, if present.
    public subscript(name: String) -> NamedTensor? { tensors.first { $0.name == name } }

    /// The metadata key holding the data section's CRC-32C as 8 lowercase hex digits.
    public static let checksumKey = "data_crc32c"

    // MARK: - Encoding

    /// The file's bytes, deterministic: the same contents always give the same bytes.
    ///
    /// Keys are sorted by UTF-8 bytes with `__metadata__` first, the data section
    /// follows that order, the header is padded with spaces to a multiple of 8
    /// bytes (so the data is 8-byte aligned) and `data_crc32c` is set (replacing
    /// any value given). Traps on a programming error: duplicate tensor names,
    /// a tensor called `__metadata__`, or values that do not fill the shape.
    public func encoded() -> [UInt8] {
        let ordered = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var crc: UInt32 = 0
        var dataCount = 0
        for (i, tensor) in ordered.enumerated() {
            precondition(tensor.name != SafeTensors.metadataKey, "a tensor cannot be named \(SafeTensors.metadataKey)")
            precondition(i == 0 || !ordered[i - 1].name.utf8.elementsEqual(tensor.name.utf8),
                         "duplicate tensor name '\(tensor.name)'")
            precondition(tensor.shape.allSatisfy { $0 >= 0 } && tensor.shape.reduce(1, *) == tensor.values.count,
                         "tensor '\(tensor.name)': \(tensor.values.count) values do not fill shape \(tensor.shape)")
            withLittleEndianBytes(tensor.values) { crc = CRC32C.checksum($0, continuing: crc) }
            dataCount += tensor.values.count * 4
        }
        var meta = metadata
        meta[Self.checksumKey] = CRC32C.hex(crc)

        var header: [UInt8] = []
        header.reserveCapacity(128 + 96 * ordered.count)
        header.append(UInt8(ascii: "{"))
        appendJSONString(SafeTensors.metadataKey, to: &header)
        header.append(contentsOf: Array(":{".utf8))
        for (i, key) in meta.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
            if i > 0 { header.append(UInt8(ascii: ",")) }
            appendJSONString(key, to: &header)
            header.append(UInt8(ascii: ":"))
            appendJSONString(meta[key]!, to: &header)
        }
        header.append(UInt8(ascii: "}"))
        var offset = 0
        for tensor in ordered {
            let end = offset + tensor.values.count * 4
            header.append(UInt8(ascii: ","))
            appendJSONString(tensor.name, to: &header)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            header.append(contentsOf: Array(":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}".utf8))
            offset = end
        }
        header.append(UInt8(ascii: "}"))
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + dataCount)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for tensor in ordered {
            withLittleEndianBytes(tensor.values) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Writes the file atomically and durably (see `AtomicFile`); throws a
    /// `FileError` naming `path` and the system's reason on failure.
    ///
    /// Honours the crash-test hook `MidWritePause` described at `AtomicFile.write`.
    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path, pausingForTests: true)
    }
}

// MARK: - Decoding

/// Reading safetensors files defensively: every length, shape and offset is
/// checked before it is used, so a damaged or hostile file gives a `FileError`
/// (`PATH: what is wrong`) and never a crash or a huge allocation.
public enum SafeTensors {
    /// The largest header accepted (the reference implementation's limit too).
    public static let maximumHeaderBytes = 100 << 20

    /// The reserved header key for string metadata.
    public static let metadataKey = "__metadata__"

    /// Reads and fully checks the file at `path`.
    public static func read(path: String) throws -> SafeTensorsFile {
        let bytes = try readWholeFile(path)
        return try decode(bytes, path: path)
    }

    /// Decodes and fully checks a file's bytes; `path` is only used in error messages.
    public static func decode(_ bytes: [UInt8], path: String) throws -> SafeTensorsFile {
        try bytes.withUnsafeBytes { try decode($0, path: path) }
    }

    /// Decodes and fully checks a file's bytes; `path` is only used in error messages.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsFile {
        func fail(_ reason: String) -> FileError { FileError("\(path): \(reason)") }

        // The length, bounded before anything is allocated.
        guard bytes.count >= 8 else {
            throw fail("truncated: \(bytes.count) bytes, too short for the 8-byte header length; the file is damaged or not a safetensors file")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderBytes) else {
            throw fail("the header length \(declared) is beyond the \(maximumHeaderBytes >> 20) MiB limit; the file is damaged or not a safetensors file")
        }
        let headerCount = Int(declared)
        guard headerCount <= bytes.count - 8 else {
            throw fail("truncated: the header length is \(headerCount) bytes but only \(bytes.count - 8) follow it; the file is damaged")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerCount)])
        let data = UnsafeRawBufferPointer(rebasing: bytes[(8 + headerCount)...])

        // The header JSON.
        guard isValidUTF8(headerBytes) else {
            throw fail("the header is not valid UTF-8; the file is damaged or not a safetensors file")
        }
        let root: JSONValue
        do {
            root = try JSONReader.parse(headerBytes)
        } catch let syntax as JSONSyntaxError {
            throw fail("the header is not a JSON object (invalid JSON at byte \(8 + syntax.offset): \(syntax.reason)); the file is damaged or not a safetensors file")
        }
        guard case let .object(members) = root else {
            throw fail("the header is \(root.kind), not a JSON object; the file is damaged or not a safetensors file")
        }

        // The entries, each checked on its own.
        var metadata: [String: String]?
        var entries: [Entry] = []
        var seen = Set<String>()
        for (key, value) in members {
            guard seen.insert(key).inserted else { throw fail("the header names '\(key)' twice; the file is damaged") }
            if key == metadataKey {
                metadata = try metadataStrings(value, fail: fail)
            } else {
                entries.append(try entry(key, value, fail: fail))
            }
        }

        // The entries together must tile the data section exactly.
        if let last = entries.max(by: { $0.end < $1.end }), last.end > data.count {
            throw fail("truncated: the header promises \(size(last.end, against: data.count)) of tensor data but the file holds \(size(data.count, against: last.end)) (tensor '\(last.name)' has data_offsets [\(last.begin), \(last.end)]); the file is damaged")
        }
        let byOffset = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var covered = 0
        var previous: Entry?
        for entry in byOffset {
            if entry.begin < covered, let previous {
                throw fail("tensor '\(entry.name)' (bytes \(entry.begin)..<\(entry.end)) overlaps '\(previous.name)' (bytes \(previous.begin)..<\(previous.end)); the file is damaged")
            }
            if entry.begin > covered {
                throw fail("bytes \(covered)..<\(entry.begin) of the data section belong to no tensor; the file is damaged")
            }
            covered = entry.end
            previous = entry
        }
        if covered < data.count {
            throw fail("\(data.count - covered) bytes after the last tensor belong to no tensor (the data section holds \(data.count), the tensors \(covered)); the file is damaged")
        }

        // The checksum, when the writer left one.
        let metadataValues = metadata ?? [:]
        if let stated = metadataValues[SafeTensorsFile.checksumKey] {
            let actual = CRC32C.hex(CRC32C.checksum(data))
            guard stated.lowercased() == actual else {
                throw fail("checksum mismatch (data section CRC-32C \(actual), header says \(stated)): the file is damaged")
            }
        }

        let tensors = entries
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
            .map { entry in
                NamedTensor(name: entry.name, shape: entry.shape,
                            values: floats(UnsafeRawBufferPointer(rebasing: data[entry.begin..<entry.end])))
            }
        return SafeTensorsFile(tensors: tensors, metadata: metadataValues)
    }

    // MARK: - Entries

    /// One tensor's header entry after its own checks.
    private struct Entry {
        var name: String
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    private static func metadataStrings(_ value: JSONValue, fail: (String) -> FileError) throws -> [String: String] {
        guard case let .object(pairs) = value else {
            throw fail("\"\(metadataKey)\" is \(value.kind), not an object of strings; the file is damaged")
        }
        var result: [String: String] = [:]
        for (key, item) in pairs {
            guard case let .string(text) = item else {
                throw fail("metadata '\(key)' is \(item.kind), not a string; the file is damaged")
            }
            guard result.updateValue(text, forKey: key) == nil else {
                throw fail("metadata '\(key)' appears twice; the file is damaged")
            }
        }
        return result
    }

    private static func entry(_ name: String, _ value: JSONValue, fail: (String) -> FileError) throws -> Entry {
        let what = "tensor '\(name)'"
        guard case let .object(fields) = value else {
            throw fail("\(what) is \(value.kind) in the header, not an object; the file is damaged")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let found = fields.first(where: { $0.key == key }) else {
                throw fail("\(what) has no \"\(key)\" in the header; the file is damaged")
            }
            return found.value
        }
        guard case let .string(dtype) = try field("dtype") else {
            throw fail("\(what): \"dtype\" is not a string; the file is damaged")
        }
        guard dtype == "F32" else {
            throw fail("\(what) has dtype \(dtype); only F32 tensors can be read (convert the file to float32)")
        }
        guard case let .array(dims) = try field("shape") else {
            throw fail("\(what): \"shape\" is not an array; the file is damaged")
        }
        var shape: [Int] = []
        var count = 1
        var overflow = false
        for dim in dims {
            guard let n = dim.nonNegativeInteger else {
                throw fail("\(what): shape \(describe(dims)) holds something other than a non-negative integer; the file is damaged")
            }
            shape.append(n)
            let (product, o) = count.multipliedReportingOverflow(by: n)
            count = product
            overflow = overflow || o
        }
        let (byteCount, o) = count.multipliedReportingOverflow(by: 4)
        guard !overflow, !o else {
            throw fail("\(what): invalid shape \(describe(dims)): too large to exist; the file is damaged")
        }
        guard case let .array(offsets) = try field("data_offsets"), offsets.count == 2,
              let begin = offsets[0].nonNegativeInteger, let end = offsets[1].nonNegativeInteger else {
            throw fail("\(what): \"data_offsets\" is not a pair of non-negative integers; the file is damaged")
        }
        guard begin <= end else {
            throw fail("\(what): data_offsets [\(begin), \(end)] end before they begin; the file is damaged")
        }
        guard end - begin == byteCount else {
            throw fail("\(what): shape \(shape) needs \(byteCount) bytes of F32 but data_offsets [\(begin), \(end)] span \(end - begin); the file is damaged")
        }
        return Entry(name: name, shape: shape, begin: begin, end: end)
    }

    // MARK: - Helpers

    /// Little-endian F32 bytes to values.
    private static func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        let count = bytes.count / 4
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            #if _endian(little)
            if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: bytes.baseAddress!, byteCount: count * 4) }
            #else
            for i in 0..<count {
                buffer[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
            #endif
            initialized = count
        }
    }

    /// A JSON array of numbers as written, for messages.
    private static func describe(_ items: [JSONValue]) -> String {
        "[" + items.map { item -> String in
            if case let .number(text) = item { return text }
            if case let .string(text) = item { return "\"\(text)\"" }
            return item.kind
        }.joined(separator: ", ") + "]"
    }

    /// A byte count for people (`940 bytes`, `12 KiB`, `3.5 MiB`), exact when `other` would round the same.
    static func size(_ n: Int, against other: Int) -> String {
        func rough(_ n: Int) -> String {
            if n < 10 << 10 { return "\(n) bytes" }
            let (value, unit) = n < 1 << 20 ? (Double(n) / 1024, "KiB") : n < 1 << 30 ? (Double(n) / 1048576, "MiB") : (Double(n) / 1073741824, "GiB")
            if value >= 100 { return "\(Int(value.rounded())) \(unit)" }
            let tenths = Int((value * 10).rounded())
            return tenths % 10 == 0 ? "\(tenths / 10) \(unit)" : "\(tenths / 10).\(tenths % 10) \(unit)"
        }
        return rough(n) == rough(other) ? "\(n) bytes" : rough(n)
    }

    /// The whole file at `path`, with POSIX reads.
    private static func readWholeFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw FileError("\(path): no such file") }
            throw FileError("\(path): cannot open: \(AtomicFile.describe(code))")
        }
        defer { _ = close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileError("\(path): cannot read: \(AtomicFile.describe(errno))") }
        guard (info.st_mode & mode_t(S_IFMT)) != mode_t(S_IFDIR) else { throw FileError("\(path): is a directory, not a safetensors file") }
        let expected = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: expected)
        var filled = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while filled < expected {
                let n = posixRead(fd, buffer.baseAddress! + filled, min(expected - filled, 1 << 30))
                if n < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw FileError("\(path): cannot read: \(AtomicFile.describe(code))")
                }
                if n == 0 { break }
                filled += n
            }
        }
        // A file that shrank while being read decodes as truncated.
        if filled < expected { bytes.removeLast(expected - filled) }
        return bytes
    }
}

// MARK: - Byte order and text

/// Whether `bytes` are well-formed UTF-8 (available on every platform, unlike `String(validating:)`).
private func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var iterator = bytes.makeIterator()
    var codec = UTF8()
    while true {
        switch codec.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// Calls `body` with the values' bytes in little-endian order (no copy on little-endian hosts).
private func withLittleEndianBytes(_ values: [Float], _ body: (UnsafeRawBufferPointer) -> Void) {
    #if _endian(little)
    values.withUnsafeBytes(body)
    #else
    values.map { $0.bitPattern.littleEndian }.withUnsafeBytes(body)
    #endif
}

/// The POSIX `read`, named apart from `SafeTensors.read(path:)`.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.read(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.read(fd, buffer, count)
    #else
    return Darwin.read(fd, buffer, count)
    #endif
}
