// Whole-file reads and gzip decompression shared by the loaders. Files are
// read with one buffer allocation and decompressed into a buffer sized from
// the gzip trailer, so loading MNIST costs a few large copies, not per-byte work.

import CZlib
import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `read(2)`, named apart from `FileBytes.read`.
private func readSome(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// File access for the loaders.
enum FileBytes {
    // MARK: - Reading

    /// The whole content of the file at `path`.
    /// - Parameter role: what the file is for, used in messages (`IDX images file`).
    static func read(_ path: String, role: String) throws -> [UInt8] {
        let (descriptor, info) = try openFile(path, role: role)
        defer { close(descriptor) }
        // st_size is 0 for pipes and some special files: read until EOF then.
        var bytes = [UInt8](repeating: 0, count: max(Int(info.st_size), 0) + 1)
        var filled = 0
        while true {
            if filled == bytes.count { bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 65536))) }
            let got = bytes.withUnsafeMutableBytes { buffer in
                readSome(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw UserError("\(path): cannot read the \(role) (\(describeErrno(errno))); check the file")
            }
            if got == 0 { break }
            filled += got
        }
        bytes.removeSubrange(filled...)
        return bytes
    }

    /// The file at `path` opened for reading, and its status; throws, naming
    /// it by `role`, when it cannot be opened or is a directory.
    private static func openFile(_ path: String, role: String, flags: Int32 = 0) throws -> (descriptor: Int32, info: stat) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | flags)
        guard descriptor >= 0 else {
            let reason = describeErrno(errno)
            throw UserError("\(path): cannot open the \(role) (\(reason)); check the path and its permissions")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let reason = describeErrno(errno)
            close(descriptor)
            throw UserError("\(path): cannot read the \(role) (\(reason)); check the file")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            close(descriptor)
            throw UserError("\(path): is a directory, not the \(role); give the path of the file itself")
        }
        return (descriptor, info)
    }

    /// The regular file at `path` mapped read-only, with `read`'s messages:
    /// its pages are the kernel's page cache, read in as they are touched
    /// and dropped again under memory pressure. Nil when it is empty.
    static func map(_ path: String, role: String) throws -> MappedFile? {
        // Non-blocking, so that opening a pipe does not wait for a writer
        // before it is refused; reads of a regular file are unaffected.
        let (descriptor, info) = try openFile(path, role: role, flags: O_NONBLOCK)
        defer { close(descriptor) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw UserError("\(path): the \(role) is not a regular file; copy it to one")
        }
        let size = Int(info.st_size)
        return size == 0 ? nil : try MappedFile(descriptor: descriptor, size: size, path: path)
    }

    /// The C library's description of an errno value.
    static func describeErrno(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    // MARK: - Gzip

    /// Whether `bytes` start with the gzip magic 1f 8b.
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// How much a decompressed file may hold, known from its first bytes: a
    /// format's header says how large the rest must be, so decompression can
    /// stop as soon as the output passes that instead of inflating a bomb.
    struct OutputBound {
        /// Bytes of output needed to read the header.
        var headerLength: Int
        /// The most bytes the whole output may hold, given the first
        /// `headerLength` bytes (or fewer, when the stream ends first: then it is not called).
        /// Throws when the header itself is wrong.
        var maximum: ([UInt8]) throws -> Int
        /// The message when the output passes the maximum (given the maximum).
        var tooLong: (Int) -> String
    }

    /// Decompresses a gzip file's content (concatenated members included).
    /// With `bound`, the output is first filled up to the header only, then
    /// never allowed past what the header promises.
    /// zlib counts the bytes it is handed in 32 bits, so larger input is
    /// handed over this many bytes at a time (`inputPiece`, smaller only in tests).
    static let largestInputPiece = Int(UInt32.max)

    static func gunzip(_ compressed: [UInt8], path: String, role: String, bound: OutputBound? = nil,
                       inputPiece: Int = largestInputPiece) throws -> [UInt8] {
        precondition(inputPiece > 0 && inputPiece <= largestInputPiece)
        // ISIZE, the last four bytes, is the uncompressed size mod 2³²: a good
        // first guess for the output buffer; it grows by doubling when short.
        var hint = 1 << 16
        if compressed.count >= 18 {
            let n = compressed.count
            let size = Int(compressed[n - 4]) | Int(compressed[n - 3]) << 8
                | Int(compressed[n - 2]) << 16 | Int(compressed[n - 1]) << 24
            // Deflate expands at most ~1032:1, so a larger hint is a damaged trailer: don't trust it.
            if size <= compressed.count * 1032 { hint = max(hint, size + 1) }
        }
        // With a bound, nothing larger than the header is allocated before the header is read.
        var output = [UInt8](repeating: 0, count: bound.map { max($0.headerLength, 1) } ?? hint)
        var produced = 0
        /// The header's limit on the output, once known.
        var maximum: Int?

        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else {
            throw UserError("\(path): cannot start zlib to decompress the \(role) (status \(initStatus)); check the zlib installation")
        }
        defer { inflateEnd(&stream) }

        func corrupt(_ detail: String) -> UserError {
            UserError("\(path): the \(role) looks gzip-compressed but \(detail); download or copy the file again")
        }

        try compressed.withUnsafeBufferPointer { input in
            /// The end of the input handed to zlib so far; it has not consumed the last `avail_in` bytes of it.
            var handed = 0
            while true {
                if stream.avail_in == 0 && handed < input.count {
                    let piece = min(input.count - handed, inputPiece)
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + handed)
                    stream.avail_in = UInt32(piece)
                    handed += piece
                }
                if let bound, maximum == nil, produced >= bound.headerLength {
                    let limit = try bound.maximum(Array(output[0..<bound.headerLength]))
                    maximum = limit
                    let wanted = min(max(hint, bound.headerLength), limit == Int.max ? limit : limit + 1)
                    if wanted > output.count { output.append(contentsOf: repeatElement(0, count: wanted - output.count)) }
                }
                if let maximum, produced > maximum {
                    throw UserError("\(path): " + bound!.tooLong(maximum))
                }
                if produced == output.count {
                    // One byte past the maximum is enough to know the file is too long.
                    var grown = output.count * 2
                    if let maximum, maximum < Int.max { grown = min(grown, maximum + 1) }
                    if let bound, maximum == nil { grown = min(grown, bound.headerLength) }
                    output.append(contentsOf: repeatElement(0, count: max(grown - output.count, 1)))
                }
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress! + produced
                    let room = min(out.count - produced, Int(UInt32.max))
                    stream.avail_out = UInt32(room)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return status
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow (as `cat a.gz b.gz` makes); anything else is ignored, as gzip does.
                    let next = handed - Int(stream.avail_in)
                    if input.count - next >= 2 && input[next] == 0x1F && input[next + 1] == 0x8B {
                        guard inflateReset(&stream) == Z_OK else { throw corrupt("its next gzip member cannot be read") }
                        continue
                    }
                    if let bound, maximum == nil, produced >= bound.headerLength {
                        maximum = try bound.maximum(Array(output[0..<bound.headerLength]))
                    }
                    if let maximum, produced > maximum { throw UserError("\(path): " + bound!.tooLong(maximum)) }
                    return
                case Z_BUF_ERROR:
                    // No progress possible: with room left that means the input ran out.
                    if stream.avail_in == 0 && handed == input.count { throw corrupt("the compressed data ends early (the file is truncated)") }
                    continue
                default:
                    throw inflateFailure(status, &stream, path: path, role: role)
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// The error for an `inflate` status that stops decompression (corrupt
    /// data, no memory, anything else zlib reports).
    static func inflateFailure(_ status: Int32, _ stream: inout z_stream, path: String, role: String) -> UserError {
        let prefix = "\(path): the \(role) looks gzip-compressed but "
        switch status {
        case Z_DATA_ERROR:
            let message = stream.msg.map { String(cString: $0) } ?? "invalid data"
            return UserError(prefix + "its compressed data is corrupt (zlib: \(message)); download or copy the file again")
        case Z_MEM_ERROR:
            return UserError("\(path): out of memory while decompressing the \(role); free memory or use a smaller file")
        default:
            return UserError(prefix + "zlib failed with status \(status); download or copy the file again")
        }
    }

    /// The first `count` bytes of the file's content (fewer when it is
    /// shorter, or when its compressed data breaks off before), decompressed
    /// when it starts with the gzip magic; reads only as much of the file as
    /// that takes. `compressed`: whether it was gzip.
    static func head(_ path: String, count: Int, role: String) throws -> (bytes: [UInt8], compressed: Bool) {
        let stream = try ByteStream(path: path, role: role)
        var bytes = [UInt8](repeating: 0, count: count)
        let got = (try? bytes.withUnsafeMutableBytes { try stream.read(into: $0) }) ?? 0
        bytes.removeSubrange(got...)
        return (bytes, stream.compressed)
    }

    /// The size of the file at `path`, or nil when it cannot be read.
    static func size(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    /// The file's bytes, decompressed when it starts with the gzip magic.
    static func readMaybeGzip(_ path: String, role: String, bound: OutputBound? = nil) throws -> [UInt8] {
        try maybeGunzip(try read(path, role: role), path: path, role: role, bound: bound)
    }

    /// `bytes` decompressed when they start with the gzip magic, else unchanged.
    static func maybeGunzip(_ bytes: [UInt8], path: String, role: String, bound: OutputBound? = nil) throws -> [UInt8] {
        isGzip(bytes) ? try gunzip(bytes, path: path, role: role, bound: bound) : bytes
    }
}
