// Atomic, durable file replacement with POSIX calls.
//
// A reader (or a run resumed after a crash or power loss) sees either the old
// file or the complete new one, never a mix: the bytes go to a temporary file
// in the same directory (so `rename` stays within one file system), which is
// fsync'ed, renamed over the target, and then the directory is fsync'ed so the
// rename itself survives a power loss.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NNCore

/// Writes whole files atomically and durably (temporary file, fsync, rename, fsync of the directory).
public enum AtomicFile {
    /// Name of the crash-test hook's environment variable; see `write(_:to:pausingForTests:)`.
    public static let testPauseVariable = "NNTRAIN_TEST_WRITE_PAUSE_SECONDS"

    /// Name of the variable that lets the first K hooked writes through; see `write(_:to:pausingForTests:)`.
    public static let testPauseSkipVariable = "NNTRAIN_TEST_WRITE_PAUSE_SKIP"

    // MARK: - Writing

    /// Replaces the file at `path` with `bytes`, atomically and durably.
    ///
    /// Throws a `UserError` naming `path` and the system's reason (missing
    /// directory, no permission, disk full, …); the temporary file is removed on
    /// every failure.
    ///
    /// Test hook: when `pausingForTests` is true and the environment variable
    /// `NNTRAIN_TEST_WRITE_PAUSE_SECONDS` holds a number, the writer stops after
    /// about half of the bytes are in the temporary file, writes the line
    /// `nntrain-test: pausing mid-write of PATH` to standard error and sleeps
    /// that many seconds, so a crash test can kill the process mid-write and
    /// check that the previous file survives intact. With
    /// `NNTRAIN_TEST_WRITE_PAUSE_SKIP=K` the first K such writes of the process
    /// go through without pausing and every later one pauses.
    public static func write(_ bytes: [UInt8], to path: String, pausingForTests: Bool = false) throws {
        try bytes.withUnsafeBytes { try write($0, to: path, pausingForTests: pausingForTests) }
    }

    /// Replaces the file at `path` with `bytes`; see `write(_:to:pausingForTests:)` for the array form.
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String, pausingForTests: Bool = false) throws {
        let (directory, name) = split(path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw UserError("\(path): not a file name (it names a directory); give a path ending in a file name")
        }
        let temporary = (directory == "/" ? "/" : directory + "/") + "." + name + ".tmp-\(getpid())"

        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw UserError("\(path): cannot write: the directory '\(directory)' does not exist; create it first")
            }
            throw UserError("\(path): cannot create the temporary file '\(temporary)': \(describe(code))")
        }
        var isOpen = true
        func fail(_ step: String, _ code: Int32) -> UserError {
            if isOpen { _ = close(fd); isOpen = false }
            _ = unlink(temporary)
            return UserError("\(path): cannot write (\(step) failed): \(describe(code))")
        }

        let half = bytes.count / 2
        if let code = writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[0..<half])) { throw fail("write", code) }
        if pausingForTests, let seconds = testPause(fromEnvironment: environment(testPauseVariable)),
           hookedWrites.next() >= Int(environment(testPauseSkipVariable) ?? "") ?? 0 {
            announceAndSleep(path: path, seconds: seconds)
        }
        if let code = writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[half...])) { throw fail("write", code) }

        while fsync(fd) != 0 {
            let code = errno
            if code != EINTR { throw fail("fsync", code) }
        }
        // close can report a deferred write error (NFS); it is never retried.
        isOpen = false
        if close(fd) != 0 {
            let code = errno
            _ = unlink(temporary)
            throw UserError("\(path): cannot write (close failed): \(describe(code))")
        }
        if rename(temporary, path) != 0 {
            let code = errno
            _ = unlink(temporary)
            throw UserError("\(path): cannot write (rename of '\(temporary)' failed): \(describe(code))")
        }
        try syncDirectory(directory, path: path)
    }

    // MARK: - Test hook

    /// The pause in seconds that the value of `NNTRAIN_TEST_WRITE_PAUSE_SECONDS`
    /// asks for, or nil (no pause) when it is unset, empty, not a number or not positive.
    public static func testPause(fromEnvironment value: String?) -> Double? {
        guard let text = value, let seconds = Double(text), seconds.isFinite, seconds > 0 else { return nil }
        return min(seconds, 86_400)
    }

    /// Counts the writes that reached the hook, so the first K can be let through.
    private static let hookedWrites = Counter()

    private static func announceAndSleep(path: String, seconds: Double) {
        let line = Array("nntrain-test: pausing mid-write of \(path)\n".utf8)
        // stderr via write(2) is unbuffered, so the line is out before the sleep.
        line.withUnsafeBytes { _ = writeAll(2, $0) }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }

    // MARK: - Helpers

    /// Writes every byte, retrying partial writes and EINTR; returns errno on failure.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        guard var pointer = bytes.baseAddress else { return nil }
        var remaining = bytes.count
        while remaining > 0 {
            // Linux transfers at most about 2 GiB per call; ask for 1 GiB at a time.
            let n = posixWrite(fd, pointer, min(remaining, 1 << 30))
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                return code
            }
            if n == 0 { return ENOSPC }
            pointer += n
            remaining -= n
        }
        return nil
    }

    /// fsyncs the directory so the rename is durable; file systems that cannot sync a directory are tolerated.
    private static func syncDirectory(_ directory: String, path: String) throws {
        let fd = open(directory, O_RDONLY | O_CLOEXEC | O_DIRECTORY)
        guard fd >= 0 else {
            throw UserError("\(path): written, but the directory '\(directory)' cannot be opened to make it durable: \(describe(errno))")
        }
        defer { _ = close(fd) }
        while fsync(fd) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EINVAL || code == ENOTSUP || code == EROFS { return }
            throw UserError("\(path): written, but fsync of the directory '\(directory)' failed: \(describe(code))")
        }
    }

    /// The directory (`.` when none is given) and the last path component.
    static func split(_ path: String) -> (directory: String, name: String) {
        let bytes = Array(path.utf8)
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return (".", path) }
        let directory = slash == 0 ? "/" : String(decoding: bytes[..<slash], as: UTF8.self)
        return (directory, String(decoding: bytes[(slash + 1)...], as: UTF8.self))
    }

    /// The value of an environment variable, without Foundation.
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// `strerror` text with the errno number, e.g. `No space left on device (errno 28)`.
    static func describe(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}

/// The POSIX `write`, named apart from the `write` methods above.
@inline(__always)
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}

/// A thread-safe counter for the test hook (no Synchronization module before macOS 15).
private final class Counter: @unchecked Sendable {
    private var value = 0
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }

    /// The count before this call, then one more.
    func next() -> Int {
        pthread_mutex_lock(mutex)
        defer { value += 1; pthread_mutex_unlock(mutex) }
        return value
    }
}
