// The part every fuzz target shares: libFuzzer's driver called with a Swift
// closure, the `--write-seeds DIR` mode that writes a target's starting
// inputs, and the one rule every parser is held to: an input is either
// accepted or refused with a UserError (or FileError) whose message is one
// line that starts with the file's name. Anything else stops the run as a
// crash, which libFuzzer saves as crash-<hash>.

#if canImport(Glibc)
import Glibc
#endif
import NNCore
import SafeTensors

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The running target's body (a C callback cannot capture it).
private var currentBody: ([UInt8]) -> Void = { _ in }

/// libFuzzer's own `main`, linked in with it, calls this by name; `Fuzz.main`
/// passes the same function to the driver.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    currentBody(count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count)))
    return 0
}

public enum Fuzz {
    /// Runs libFuzzer with `body` as the target and exits with its status.
    /// `--write-seeds DIR` as the arguments calls `seeds(DIR)` instead.
    public static func main(seeds: ((String) throws -> Void)? = nil, _ body: @escaping ([UInt8]) -> Void) -> Never {
        let arguments = CommandLine.arguments
        if arguments.count == 3, arguments[1] == "--write-seeds" {
            do {
                try seeds?(arguments[2])
                exit(0)
            } catch {
                fputs("\(arguments[0]): cannot write the seeds: \(error)\n", stderr)
                exit(1)
            }
        }
        currentBody = body
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    }

    /// Runs `body`, which may succeed or throw a user-facing error: a
    /// `UserError` or `FileError` of one line starting with one of `paths`.
    /// Any other error, or such an error with another message, is a finding.
    public static func expectAcceptedOrRefused(paths: [String], _ body: () throws -> Void) {
        let message: String
        do {
            try body()
            return
        } catch let error as UserError {
            message = error.message
        } catch let error as FileError {
            message = error.message
        } catch {
            finding("an error that is not a UserError or FileError: \(error)")
        }
        if !paths.contains(where: { message.hasPrefix($0) }) {
            finding("an error message that does not start with the file's name (\(paths.joined(separator: " or "))): \(message)")
        }
        if message.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }) {
            finding("an error message of more than one line: \(message)")
        }
    }

    /// Reports a broken rule and aborts, so that libFuzzer keeps the input.
    public static func finding(_ what: String) -> Never {
        fputs("FINDING: \(what)\n", stderr)
        abort()
    }

    /// Writes `bytes` to `path` with plain POSIX calls (no atomic rename,
    /// no sync: this runs for every input of a target that reads files).
    public static func writeFile(_ bytes: [UInt8], to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { finding("cannot create \(path)") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            guard n > 0 else { finding("cannot write \(path)") }
            written += n
        }
    }

    // MARK: - Seeds

    /// Writes one seed file `name` under `directory` (created when missing).
    public static func writeSeed(_ bytes: [UInt8], _ name: String, in directory: String) throws {
        mkdir(directory, 0o755)
        let path = directory + "/" + name
        guard let file = fopen(path, "wb") else { throw SeedError("cannot create \(path)") }
        defer { fclose(file) }
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw SeedError("cannot write \(path)") }
    }

    /// The content of a file, or nil when it cannot be read.
    public static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// The main package's root directory (seeds read its datasets and examples).
    public static var repositoryRoot: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(5)  // Tests/Fuzz/Sources/FuzzDriver/Driver.swift
        return parts.joined(separator: "/")
    }
}

/// Why seeds could not be written.
public struct SeedError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
