// The library never talks to the terminal: no file under a library target
// prints, exits, reads the environment or installs signal handlers. Those
// belong to the application (NNTrainApp), which passes values down.

import Foundation
import XCTest

final class LibraryBoundaryTests: XCTestCase {
    /// Every target below the application.
    static let libraryTargets = ["NNCore", "NNData", "NNDistributed", "SafeTensors", "NNTraining", "NNCUDA", "NNConformance"]

    /// What the library must not call, and why each is the application's.
    /// A call that stands alone or is qualified by a module name (`Glibc.exit(`), not a method (`x.exit(`).
    static let call = #"(?:(?<![\w.])|\b(?:Swift|Glibc|Musl|Darwin|Foundation)\.)"#

    static let forbidden: [(pattern: String, what: String)] = [
        (call + #"print\("#, "print (terminal output is the application's)"),
        (call + #"(exit|_exit|abort)\("#, "exit (only the application ends the process)"),
        (#"\bFileHandle\.standard(Output|Error)|\bFileHandle\(fileDescriptor:"#, "standard output or error"),
        (#"\b(fputs|puts|printf|putchar|fflush|isatty)\("#, "C terminal output"),
        (#"\bwrite\((STDOUT_FILENO|STDERR_FILENO|1|2),"#, "a write to standard output or error"),
        (#"\b(getenv|setenv|unsetenv)\(|\benviron\b"#, "getenv/setenv (the application reads the environment)"),
        (#"ProcessInfo\.processInfo\.(environment|arguments)"#, "the process's environment or arguments"),
        (#"\bCommandLine\."#, "argv"),
        (call + #"signal\(|\bsigaction\b"#, "signal handlers"),
    ]

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The offending lines of one file's source text, comments excluded.
    static func violations(in text: String) -> [(line: Int, what: String)] {
        var found: [(Int, String)] = []
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            // A comment starts at `//` at the line's start or after a space (not `http://`).
            let code = raw.range(of: #"(^|\s)//"#, options: .regularExpression).map { String(raw[..<$0.lowerBound]) } ?? raw
            for rule in forbidden where code.range(of: rule.pattern, options: .regularExpression) != nil {
                found.append((index + 1, rule.what))
            }
        }
        return found
    }

    func testNoLibraryFileTalksToTheTerminalOrTheEnvironment() throws {
        var scanned = 0
        for target in Self.libraryTargets {
            let directory = Self.packageRoot.appendingPathComponent("Sources/\(target)")
            let files = FileManager.default.enumerator(atPath: directory.path)?.compactMap { $0 as? String }
                .filter { $0.hasSuffix(".swift") } ?? []
            XCTAssertFalse(files.isEmpty, "no Swift sources found under Sources/\(target)")
            for file in files {
                let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                scanned += 1
                for violation in Self.violations(in: text) {
                    XCTFail("Sources/\(target)/\(file):\(violation.line): calls \(violation.what)")
                }
            }
        }
        XCTAssertGreaterThan(scanned, 30, "the scan found too few files to mean anything")
    }

    /// The scan itself catches each kind of call (and ignores comments and look-alikes).
    func testTheScanCatchesEachForbiddenCall() {
        let offending = [
            "print(\"hi\")", "    exit(2)", "abort()", "FileHandle.standardError.write(data)", "fputs(text, stderr)",
            "let v = getenv(\"HOME\")", "setenv(\"A\", \"1\", 1)", "ProcessInfo.processInfo.environment[\"X\"]",
            "let args = CommandLine.arguments", "signal(SIGTERM, handler)", "sigaction(SIGINT, &action, nil)",
            "Glibc.exit(1)", "Swift.print(x)", "Glibc.signal(SIGINT, SIG_DFL)", "fflush(stdout)", "isatty(1)",
            "_ = write(2, p, n)", "let e = environ", "FileHandle(fileDescriptor: 1)",
            "let url = \"http://example\"; print(url)",
        ]
        for line in offending {
            XCTAssertEqual(Self.violations(in: line).count, 1, line)
        }
        let harmless = [
            "// print(\"in a comment\")", "model.printSummary()", "let exitCode = 2", "func fingerprint() {}",
            "communicator.broadcast(&x)", "Signals.describe()", "let x = 1 // exit(2)", "posixWrite(fd, p, n)",
            "environment: [:]", "model.exit(at: 2)",
        ]
        for line in harmless {
            XCTAssertEqual(Self.violations(in: line).count, 0, line)
        }
    }
}
