// Rank 0 proves the run directory usable before any data is loaded: it is
// created, a small file is really written, synced and removed there, and the
// file system's free space is compared with the checkpoints the run keeps.
// A read-only mount or a full disk is then found in a second, with its real
// cause, instead of at the first checkpoint.

import Foundation
import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Checks that the run directory can hold what the run writes.
public enum RunDirectoryCheck {
    /// Creates `directory` and its `checkpoints/` (with every missing parent),
    /// then writes, syncs and removes a small file in it.
    /// - Throws: `UserError` naming the path and the cause: a read-only file
    ///   system, a file where a directory must be, permission denied, no space.
    /// - Returns: the outermost directory it created (nil: all existed), for `removeCreated`.
    @discardableResult
    public static func prepare(_ directory: String) throws -> String? {
        let created = try createDirectories(Checkpoints.directory(of: directory), for: directory)
        do {
            try testWrite(in: Checkpoints.directory(of: directory), for: directory)
        } catch {
            if let created { removeCreated(created, inside: directory) }
            throw error
        }
        return created
    }

    /// Removes what `prepare` created while it is still empty, so a run that
    /// fails during start-up leaves no empty run directory behind.
    public static func removeCreated(_ created: String, inside directory: String) {
        var path = Checkpoints.directory(of: directory)
        while path.count >= created.count {
            guard rmdir(path) == 0 else { return }
            guard let slash = path.lastIndex(of: "/") else { return }
            path = String(path[..<slash])
        }
    }

    /// `mkdir -p`, one component at a time, so a failure names the component
    /// and its errno; returns the outermost directory it created.
    static func createDirectories(_ path: String, for runDirectory: String) throws -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        var created: String?
        for component in path.split(separator: "/") where !component.isEmpty {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            if mkdir(prefix, 0o755) == 0 {
                if created == nil { created = prefix }
                continue
            }
            let code = errno
            var info = stat()
            let exists = stat(prefix, &info) == 0
            if exists && (info.st_mode & S_IFMT) == S_IFDIR { continue }
            if exists || code == ENOTDIR {
                let file = exists ? prefix : firstNonDirectory(prefix) ?? prefix
                throw UserError("run directory \(runDirectory): cannot create it: '\(file)' is a file, not a directory; remove or rename it, or give another --run-dir")
            }
            throw failure(runDirectory, action: prefix == runDirectory ? "cannot create it" : "cannot create '\(prefix)'", code: code)
        }
        return created
    }

    /// The first component of `path` that exists and is not a directory.
    private static func firstNonDirectory(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") where !component.isEmpty {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            var info = stat()
            if stat(prefix, &info) == 0 && (info.st_mode & S_IFMT) != S_IFDIR { return prefix }
        }
        return nil
    }

    /// Creates a file, writes 4 KiB, fsyncs, closes and removes it.
    static func testWrite(in directory: String, for runDirectory: String) throws {
        let path = directory + "/.write-test-\(getpid())"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure(runDirectory, action: "a test write failed", code: errno) }
        var code: Int32 = 0
        let block = [UInt8](repeating: 0x6E, count: 4096)
        var written = 0
        while written < block.count && code == 0 {
            let n = block.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if n > 0 { written += n } else if n == 0 { code = ENOSPC } else if errno != EINTR { code = errno }
        }
        while code == 0 && fsync(descriptor) != 0 {
            if errno != EINTR { code = errno }
        }
        if close(descriptor) != 0 && code == 0 { code = errno }
        _ = unlink(path)
        if code != 0 { throw failure(runDirectory, action: "a test write failed", code: code) }
    }

    /// The message for a failed directory operation, in the user's terms.
    static func failure(_ path: String, action: String, code: Int32) -> UserError {
        let cause: String
        switch code {
        case EROFS: cause = "the file system is read-only (EROFS); give a --run-dir on a writable file system"
        case EACCES, EPERM: cause = "permission denied (\(name(code))); give a --run-dir you can write to, or fix its permissions"
        case ENOSPC, EDQUOT: cause = "no space left on the file system (\(name(code))); free space or give a --run-dir on another file system"
        case ENOTDIR: cause = "a part of the path is a file, not a directory (ENOTDIR); give another --run-dir"
        default: cause = "\(String(cString: strerror(code))) (errno \(code)); check the path"
        }
        return UserError("run directory \(path): \(action): \(cause)")
    }

    private static func name(_ code: Int32) -> String {
        switch code {
        case EACCES: "EACCES"
        case EPERM: "EPERM"
        case ENOSPC: "ENOSPC"
        case EDQUOT: "EDQUOT"
        default: "errno \(code)"
        }
    }

    // MARK: - Free space

    /// The bytes of one checkpoint of `parameterCount` parameters: the
    /// parameters and the optimizer's slots as Float32, and a header of the
    /// configuration and one entry per tensor.
    public static func checkpointBytes(_ config: RunConfig, parameterCount: Int) -> Int {
        let slots = config.optimizer.rule.slots.count
        let tensors = config.model.denseLayers.count * 2 * (1 + slots)
        let header = Count.add(4096, config.canonicalJSON.utf8.count, Count.multiply(tensors, 160))
        return Count.add(header, Count.multiply(1 + slots, parameterCount, MemoryLayout<Float>.stride))
    }

    /// Bytes available to this process on the file system holding `path`, or nil when unknown.
    public static func availableBytes(_ path: String) -> Int? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Count.multiply(Int(info.f_bavail), Int(info.f_frsize))
    }

    /// Refuses a run whose checkpoints cannot fit: while a new checkpoint is
    /// written the directory holds `keep` older ones beside it, so `keep + 1`
    /// must fit, less the ones this run directory already holds (a resumed run).
    public static func checkSpace(_ directory: String, config: RunConfig, parameterCount: Int, keep: Int) throws {
        let checkpoint = checkpointBytes(config, parameterCount: parameterCount)
        let held = min(Checkpoints.list(directory).count, max(keep, 1))
        let count = max(keep, 1) + 1 - held
        let needed = Count.multiply(count, checkpoint)
        guard let available = availableBytes(Checkpoints.directory(of: directory)), needed > available else { return }
        let kept = held > 0 ? " (\(held) already there)" : ""
        throw UserError("run directory \(directory): not enough space for the checkpoints: needs \(ByteCount.format(needed)) for \(count) checkpoint\(count == 1 ? "" : "s") of \(ByteCount.format(checkpoint)) (--keep-checkpoints \(keep) + 1 being written\(kept)) but the file system has \(ByteCount.format(available)) available; free space, lower --keep-checkpoints, or give a --run-dir on another file system")
    }
}
