import Foundation

import SafeTensors
import XCTest

/// Atomic, durable replacement of files and the crash-test hook.
final class AtomicFileTests: XCTestCase {
    private let childTargetVariable = "NNTRAIN_TEST_CHILD_TARGET"

    private func contents(of directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    private func file(_ values: [Float], note: String) -> SafeTensorsFile {
        SafeTensorsFile(tensors: [NamedTensor(name: "w", shape: [values.count], values: values)], metadata: ["note": note])
    }

    // MARK: - Replacement

    func testWriteCreatesAndReplacesWithoutLeavingTemporaryFiles() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        let first = file([1, 2, 3], note: "first")
        try first.write(to: path)
        XCTAssertEqual(try SafeTensors.read(path: path).tensors, first.tensors)

        let second = file((0..<1000).map(Float.init), note: "second")
        try second.write(to: path)
        XCTAssertEqual(try SafeTensors.read(path: path).tensors, second.tensors)
        XCTAssertEqual(try SafeTensors.read(path: path).metadata["note"], "second")
        XCTAssertEqual(try contents(of: directory), ["model.safetensors"])
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: path))), second.encoded())
    }

    func testRelativePathInTheCurrentDirectory() throws {
        let directory = try makeTemporaryDirectory(self)
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(directory))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try AtomicFile.write(Array("hello\n".utf8), to: "latest")
        XCTAssertEqual(try String(contentsOfFile: directory + "/latest", encoding: .utf8), "hello\n")
        XCTAssertEqual(try contents(of: directory), ["latest"])
    }

    func testMissingDirectoryIsAUserError() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/no/such/dir/model.safetensors"
        XCTAssertThrowsError(try file([1], note: "x").write(to: path)) { error in
            let message = (error as? FileError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix(path + ": cannot write"), message)
            XCTAssertTrue(message.contains("does not exist"), message)
        }
    }

    func testFailedRenameRemovesTheTemporaryFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let target = directory + "/occupied"
        try FileManager.default.createDirectory(atPath: target + "/inner", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write([1, 2, 3], to: target)) { error in
            let message = (error as? FileError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix(target + ": cannot write (rename"), message)
            XCTAssertTrue(message.contains("errno"), message)
        }
        XCTAssertEqual(try contents(of: directory), ["occupied"])
    }

    func testPathEndingInSlashIsAUserError() {
        XCTAssertThrowsError(try AtomicFile.write([1], to: "/tmp/")) { error in
            XCTAssertTrue((error as? FileError)?.message.hasPrefix("/tmp/: not a file name") ?? false, "\(error)")
        }
    }

    func testUnwritableDirectoryIsAUserError() throws {
        guard getuid() != 0 else { throw XCTSkip("running as root: permissions are not enforced") }
        let directory = try makeTemporaryDirectory(self)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: directory)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory) }
        XCTAssertThrowsError(try AtomicFile.write([1], to: directory + "/f")) { error in
            XCTAssertTrue((error as? FileError)?.message.contains("Permission denied") ?? false, "\(error)")
        }
    }

    // MARK: - Test hook

    func testHookPausesOnlyWhenAskedAndOnlyForSafeTensors() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        let announced = Announcements()
        defer { MidWritePause.installed = nil }

        MidWritePause.installed = nil
        try file([1, 2], note: "a").write(to: path)
        XCTAssertEqual(announced.paths, [], "no pause without an installed one")

        MidWritePause.installed = MidWritePause(seconds: 0.05) { announced.add($0) }
        try file([3, 4], note: "b").write(to: path)
        XCTAssertEqual(announced.paths, [path])
        XCTAssertEqual(try SafeTensors.read(path: path)["w"]?.values, [3, 4], "the write completes after the pause")

        try AtomicFile.write([1, 2, 3], to: directory + "/latest")
        XCTAssertEqual(announced.paths, [path], "other atomic writes do not pause")
    }

    func testHookLetsTheFirstWritesThrough() throws {
        let directory = try makeTemporaryDirectory(self)
        let announced = Announcements()
        defer { MidWritePause.installed = nil }
        MidWritePause.installed = MidWritePause(seconds: 0.01, skip: 2) { announced.add($0) }
        for name in ["a", "b", "c", "d"] { try file([1], note: name).write(to: directory + "/" + name) }
        XCTAssertEqual(announced.paths, [directory + "/c", directory + "/d"])
    }

    // MARK: - Crash

    /// Not a test on its own: the child process of `testKillMidWriteKeepsThePreviousFile`.
    /// Its first write completes and its second pauses.
    func testChildWriterForCrashTest() throws {
        guard let target = ProcessInfo.processInfo.environment[childTargetVariable] else {
            throw XCTSkip("runs only as the child of testKillMidWriteKeepsThePreviousFile")
        }
        MidWritePause.installed = MidWritePause(seconds: 120, skip: 1) { path in
            fputs("nntrain-test: pausing mid-write of \(path)\n", stderr)
            fflush(stderr)
        }
        try file([1, 2, 3], note: "first").write(to: target)
        try file((0..<250_000).map(Float.init), note: "second").write(to: target)
    }

    /// Kills a writer while it pauses mid-write (the hook, after one write let
    /// through) and checks that the previous file is intact and the half-written
    /// temporary is only a temporary.
    func testKillMidWriteKeepsThePreviousFile() throws {
        #if os(Linux)
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        try file([9], note: "parent").write(to: path)

        let stderrPath = directory + "/child-stderr"
        XCTAssertTrue(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        child.arguments = ["SafeTensorsTests.AtomicFileTests/testChildWriterForCrashTest"]
        var environment = ProcessInfo.processInfo.environment
        environment[childTargetVariable] = path
        child.environment = environment
        child.standardOutput = FileHandle.nullDevice
        child.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() } }

        let line = "nntrain-test: pausing mid-write of \(path)"
        let deadline = Date().addingTimeInterval(60)
        var announced = false
        while Date() < deadline, child.isRunning {
            if (try? String(contentsOfFile: stderrPath, encoding: .utf8))?.contains(line) == true { announced = true; break }
            usleep(20_000)
        }
        let output = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(announced, "the child never paused; its stderr: \(output)")
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)

        XCTAssertEqual(output.components(separatedBy: "nntrain-test:").count, 2, "one pause only: \(output)")
        let survivor = try SafeTensors.read(path: path)
        XCTAssertEqual(survivor.tensors, file([1, 2, 3], note: "first").tensors, "the previous file survives the crash")
        XCTAssertEqual(survivor.metadata["note"], "first", "the first write was let through")
        let temporary = directory + "/.model.safetensors.tmp-\(child.processIdentifier)"
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: temporary)[.size] as? Int)
        let full = file((0..<250_000).map(Float.init), note: "second").encoded().count
        XCTAssertEqual(size, full / 2, "the temporary holds the first half")
        XCTAssertThrowsError(try SafeTensors.read(path: temporary), "a half-written file is rejected")
        #else
        throw XCTSkip("needs /proc/self/exe to start the test binary as a child (Linux only)")
        #endif
    }
}

/// Paths a pause announced, collected from the writing thread.
private final class Announcements: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []

    func add(_ path: String) { lock.lock(); list.append(path); lock.unlock() }

    var paths: [String] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }
}
