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
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            let reason = describeErrno(errno)
            throw UserError("\(path): cannot open the \(role) (\(reason)); check the path and its permissions")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw UserError("\(path): cannot read the \(role) (\(describeErrno(errno))); check the file")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw UserError("\(path): is a directory, not the \(role); give the path of the file itself")
        }
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

    /// Decompresses a gzip file's content (concatenated members included).
    static func gunzip(_ compressed: [UInt8], path: String, role: String) throws -> [UInt8] {
        // ISIZE, the last four bytes, is the uncompressed size mod 2³²: a good
        // first guess for the output buffer; it grows by doubling when short.
        var capacity = 1 << 16
        if compressed.count >= 18 {
            let n = compressed.count
            let size = Int(compressed[n - 4]) | Int(compressed[n - 3]) << 8
                | Int(compressed[n - 2]) << 16 | Int(compressed[n - 1]) << 24
            // Deflate expands at most ~1032:1, so a larger hint is a damaged trailer: don't trust it.
            if size <= compressed.count * 1032 { capacity = max(capacity, size + 1) }
        }
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0

        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else {
            throw UserError("\(path): cannot start zlib to decompress the \(role) (status \(initStatus)); check the zlib installation")
        }
        defer { inflateEnd(&stream) }

        func corrupt(_ detail: String) -> UserError {
            UserError("\(path): the \(role) looks gzip-compressed but \(detail); download or copy the file again")
        }

        guard compressed.count <= Int(UInt32.max) else {
            throw UserError("\(path): the \(role) is a gzip file over 4 GiB, which cannot be read; decompress it first")
        }
        try compressed.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!)
            stream.avail_in = UInt32(truncatingIfNeeded: input.count)
            while true {
                if produced == output.count {
                    output.append(contentsOf: repeatElement(0, count: output.count))
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
                    let rest = Int(stream.avail_in)
                    let next = input.count - rest
                    if rest >= 2 && input[next] == 0x1F && input[next + 1] == 0x8B {
                        guard inflateReset(&stream) == Z_OK else { throw corrupt("its next gzip member cannot be read") }
                        continue
                    }
                    return
                case Z_BUF_ERROR:
                    // No progress possible: with room left that means the input ran out.
                    if stream.avail_in == 0 { throw corrupt("the compressed data ends early (the file is truncated)") }
                    continue
                case Z_DATA_ERROR:
                    let message = stream.msg.map { String(cString: $0) } ?? "invalid data"
                    throw corrupt("its compressed data is corrupt (zlib: \(message))")
                case Z_MEM_ERROR:
                    throw UserError("\(path): out of memory while decompressing the \(role); free memory or use a smaller file")
                default:
                    throw corrupt("zlib failed with status \(status)")
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// `bytes` decompressed when they start with the gzip magic, else unchanged.
    static func maybeGunzip(_ bytes: [UInt8], path: String, role: String) throws -> [UInt8] {
        isGzip(bytes) ? try gunzip(bytes, path: path, role: role) : bytes
    }
}
