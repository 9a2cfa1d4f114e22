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


/// Writes whole files atomically and durably (temporary file, fsync, rename, fsync of the directory).
public enum AtomicFile {
    // MARK: - Writing

    /// Replaces the file at `path` with `bytes`, atomically and durably.
    ///
    /// Throws a `FileError` naming `path` and the system's reason (missing
    /// directory, no permission, disk full, …); the temporary file is removed on
    /// every failure.
    ///
    /// Test hook: when `pausingForTests` is true and a `MidWritePause` is
    /// installed, the writer stops after about half of the bytes are in the
    /// temporary file, tells the pause's `announce` the path and sleeps, so a
    /// crash test can kill the process mid-write and check that the previous
    /// file survives intact.
    ///
    /// `durable: false` leaves out both fsyncs: the replacement is still
    /// atomic (a reader sees the old file or the new one), but a power loss
    /// may lose it. For files rewritten often and derived from others, such
    /// as a report page.
    public static func write(_ bytes: [UInt8], to path: String, pausingForTests: Bool = false, durable: Bool = true) throws {
        try bytes.withUnsafeBytes { try write($0, to: path, pausingForTests: pausingForTests, durable: durable) }
    }

    /// Replaces the file at `path` with `bytes`; see `write(_:to:pausingForTests:)` for the array form.
    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String, pausingForTests: Bool = false,
                             durable: Bool = true) throws {
        let (directory, name) = split(path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw FileError("\(path): not a file name (it names a directory); give a path ending in a file name")
        }
        let temporary = (directory == "/" ? "/" : directory + "/") + "." + name + ".tmp-\(getpid())"

        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw FileError("\(path): cannot write: the directory '\(directory)' does not exist; create it first")
            }
            throw FileError("\(path): cannot create the temporary file '\(temporary)': \(describe(code))")
        }
        var isOpen = true
        func fail(_ step: String, _ code: Int32) -> FileError {
            if isOpen { _ = close(fd); isOpen = false }
            _ = unlink(temporary)
            return FileError("\(path): cannot write (\(step) failed): \(describe(code))")
        }

        let half = bytes.count / 2
        if let code = writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[0..<half])) { throw fail("write", code) }
        if pausingForTests, let pause = MidWritePause.installed, hookedWrites.next() >= pause.skip {
            pause.announce(path)
            sleep(seconds: pause.seconds)
        }
        if let code = writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[half...])) { throw fail("write", code) }

        while durable && fsync(fd) != 0 {
            let code = errno
            if code != EINTR { throw fail("fsync", code) }
        }
        // close can report a deferred write error (NFS); it is never retried.
        isOpen = false
        if close(fd) != 0 {
            let code = errno
            _ = unlink(temporary)
            throw FileError("\(path): cannot write (close failed): \(describe(code))")
        }
        if rename(temporary, path) != 0 {
            let code = errno
            _ = unlink(temporary)
            throw FileError("\(path): cannot write (rename of '\(temporary)' failed): \(describe(code))")
        }
        if durable { try syncDirectory(directory, path: path) }
    }

    // MARK: - Test hook

    /// Counts the writes that reached the hook, so the first K can be let through.
    private static let hookedWrites = Counter()

    private static func sleep(seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }

    // MARK: - Helpers

    /// Writes every byte to an open descriptor, retrying partial writes and
    /// EINTR; returns errno on failure (nil: all written).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
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
            throw FileError("\(path): written, but the directory '\(directory)' cannot be opened to make it durable: \(describe(errno))")
        }
        defer { _ = close(fd) }
        while fsync(fd) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EINVAL || code == ENOTSUP || code == EROFS { return }
            throw FileError("\(path): written, but fsync of the directory '\(directory)' failed: \(describe(code))")
        }
    }

    /// The directory (`.` when none is given) and the last path component.
    static func split(_ path: String) -> (directory: String, name: String) {
        let bytes = Array(path.utf8)
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return (".", path) }
        let directory = slash == 0 ? "/" : String(decoding: bytes[..<slash], as: UTF8.self)
        return (directory, String(decoding: bytes[(slash + 1)...], as: UTF8.self))
    }

    /// `strerror` text with the errno number, e.g. `No space left on device (errno 28)`.
    static func describe(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}

/// A pause in the middle of hooked writes (`write(_:to:pausingForTests:)`),
/// installed by a crash test so it can kill the writer with half a file on disk.
public struct MidWritePause: Sendable {
    /// How long each hooked write sleeps.
    public var seconds: Double
    /// How many hooked writes go through before the first pause.
    public var skip: Int
    /// Told the target path just before the sleep (so a test knows when to strike).
    public var announce: @Sendable (String) -> Void

    /// A pause of `seconds` after the first `skip` hooked writes.
    public init(seconds: Double, skip: Int = 0, announce: @escaping @Sendable (String) -> Void) {
        self.seconds = seconds
        self.skip = skip
        self.announce = announce
    }

    /// The pause in force, if any (process-wide; nil in normal runs).
    public static var installed: MidWritePause? {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }

    private static let storage = Locked<MidWritePause?>(nil)
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

/// A value behind a mutex (no Synchronization module before macOS 15).
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    func withLock<T>(_ body: (inout Value) -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&value)
    }
}

/// A thread-safe counter for the test hook.
private final class Counter: Sendable {
    private let count = Locked(0)

    /// The count before this call, then one more.
    func next() -> Int {
        count.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
