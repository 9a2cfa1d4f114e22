// Writing files so that a crash at any instant leaves the old file or the new
// one, never a torn file under the final name.

import Foundation
import NNCore
#if canImport(Glibc)
import Glibc
#endif

/// Atomic, durable file replacement: write a temporary file in the same
/// directory, fsync it, rename it over the target, fsync the directory.
public enum AtomicFile {
    /// Replaces `path` with `bytes`.
    ///
    /// Test hook: when `NNTRAIN_TEST_WRITE_PAUSE_SECONDS` is set, the writer of
    /// a `.safetensors` file prints `nntrain-test: pausing mid-write of PATH`
    /// to standard error after about half of the bytes and sleeps that long,
    /// so a test can kill the process in the middle of a write. With
    /// `NNTRAIN_TEST_WRITE_PAUSE_SKIP=K` the first K such writes go through.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        func fail(_ what: String) -> UserError {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return UserError("\(path): cannot \(what): \(reason); check that the directory exists and is writable")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("create a temporary file") }
        let pause = path.hasSuffix(".safetensors") ? TestHook.pauseForThisWrite() : nil
        let written = bytes.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            var paused = pause == nil
            while offset < buffer.count {
                if !paused && offset >= buffer.count / 2 {
                    paused = true
                    FileHandle.standardError.write(Data("nntrain-test: pausing mid-write of \(path)\n".utf8))
                    usleep(UInt32(max(0, pause!) * 1_000_000))
                }
                let chunk = paused ? buffer.count - offset : buffer.count / 2 - offset
                let n = Glibc.write(fd, buffer.baseAddress! + offset, max(chunk, 1))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
        guard written else {
            let error = fail("write")
            close(fd)
            throw error
        }
        guard fsync(fd) == 0 else {
            let error = fail("flush to disk")
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw fail("replace the file") }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }
}

/// The mid-write pause used by crash tests (see `AtomicFile.write`).
enum TestHook {
    nonisolated(unsafe) private static var safetensorsWrites = 0

    static func pauseForThisWrite() -> Double? {
        let environment = ProcessInfo.processInfo.environment
        guard let seconds = environment["NNTRAIN_TEST_WRITE_PAUSE_SECONDS"].flatMap(Double.init) else { return nil }
        defer { safetensorsWrites += 1 }
        let skip = environment["NNTRAIN_TEST_WRITE_PAUSE_SKIP"].flatMap(Int.init) ?? 0
        return safetensorsWrites == skip ? seconds : nil
    }
}
