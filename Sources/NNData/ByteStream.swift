// A file's content read front to back in pieces, decompressed on the way when
// it is gzip: what a loader uses when the whole file, or what it decompresses
// to, should not sit in memory at once.

import CZlib
import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `read(2)`, named apart from `ByteStream.read`.
private func readBytes(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// Reads a raw or gzip-compressed file sequentially.
final class ByteStream {
    let path: String
    let role: String
    /// Whether the file is gzip-compressed.
    private(set) var compressed = false
    private let descriptor: Int32
    /// Compressed input not yet inflated (gzip), or raw bytes peeked at open.
    private var input = [UInt8](repeating: 0, count: 1 << 20)
    private var inputStart = 0, inputEnd = 0
    private var fileEnded = false
    private var stream = z_stream()
    private var zlibStarted = false
    private var streamEnded = false

    /// Opens `path`; `role` names the file in messages (`IDX images file`).
    init(path: String, role: String) throws {
        self.path = path
        self.role = role
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw UserError("\(path): cannot open the \(role) (\(FileBytes.describeErrno(errno))); check the path and its permissions")
        }
        // From here on `deinit` closes the descriptor, also when init throws.
        var info = stat()
        if fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw UserError("\(path): is a directory, not the \(role); give the path of the file itself")
        }
        while inputEnd < 2, try refill() {}
        compressed = inputEnd >= 2 && input[0] == 0x1F && input[1] == 0x8B
        if compressed {
            let status = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else {
                throw UserError("\(path): cannot start zlib to decompress the \(role) (status \(status)); check the zlib installation")
            }
            zlibStarted = true
        }
    }

    /// The file's size when it is a regular file, else nil.
    var fileSize: Int? {
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    deinit {
        if zlibStarted { inflateEnd(&stream) }
        close(descriptor)
    }

    /// Fills `buffer` with the next bytes of content; fewer only at the end.
    /// Returns how many it filled.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let got = compressed ? try inflate(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                                 : try copyRaw(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if got == 0 { break }
            filled += got
        }
        return filled
    }

    /// Reads more of the file into the input buffer; false at its end.
    private func refill() throws -> Bool {
        if fileEnded { return false }
        if inputStart == inputEnd { inputStart = 0; inputEnd = 0 }
        if inputEnd == input.count {
            input.removeSubrange(0..<inputStart)
            input += [UInt8](repeating: 0, count: inputStart)
            inputEnd -= inputStart
            inputStart = 0
        }
        while true {
            let n = input.withUnsafeMutableBytes { readBytes(descriptor, $0.baseAddress! + inputEnd, $0.count - inputEnd) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw UserError("\(path): cannot read the \(role) (\(FileBytes.describeErrno(errno))); check the file") }
            if n == 0 { fileEnded = true; return false }
            inputEnd += n
            return true
        }
    }

    private func copyRaw(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if inputStart == inputEnd, !(try refill()) { return 0 }
        let n = min(buffer.count, inputEnd - inputStart)
        input.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + inputStart, byteCount: n) }
        inputStart += n
        return n
    }

    private func corrupt(_ detail: String) -> UserError {
        UserError("\(path): the \(role) looks gzip-compressed but \(detail); download or copy the file again")
    }

    /// Inflates into `buffer`; 0 at the end of the last gzip member.
    private func inflate(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while !streamEnded {
            if inputStart == inputEnd, !(try refill()) {
                throw corrupt("the compressed data ends early (the file is truncated)")
            }
            let room = min(buffer.count, Int(UInt32.max)), available = inputEnd - inputStart
            let status: Int32 = input.withUnsafeMutableBufferPointer { bytes in
                stream.next_in = bytes.baseAddress! + inputStart
                stream.avail_in = UInt32(min(available, Int(UInt32.max)))
                stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.avail_out = UInt32(room)
                return CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            inputStart = inputEnd - Int(stream.avail_in)
            let produced = room - Int(stream.avail_out)
            switch status {
            case Z_OK, Z_BUF_ERROR:
                if produced > 0 { return produced }
            case Z_STREAM_END:
                // Another gzip member may follow (as `cat a.gz b.gz` makes);
                // anything else after a member is ignored, as gzip does.
                while inputEnd - inputStart < 2, try refill() {}
                if inputEnd - inputStart >= 2 && input[inputStart] == 0x1F && input[inputStart + 1] == 0x8B {
                    guard inflateReset(&stream) == Z_OK else { throw corrupt("its next gzip member cannot be read") }
                } else {
                    streamEnded = true
                }
                if produced > 0 { return produced }
            default:
                throw FileBytes.inflateFailure(status, &stream, path: path, role: role)
            }
        }
        return 0
    }
}
