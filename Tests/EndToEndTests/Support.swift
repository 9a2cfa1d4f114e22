// Running the real nntrain binary (and mpirun) from tests.

import Foundation
import XCTest
import NNTraining
import SafeTensors

/// The package root, from this file's location.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The nntrain binary `swift build` produced (or NNTRAIN_BINARY).
var nntrainBinary: String {
    if let path = ProcessInfo.processInfo.environment["NNTRAIN_BINARY"] { return path }
    return packageRoot + "/.build/debug/nntrain"
}

/// What a finished process left.
struct Outcome {
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double
}

/// Runs `executable` with `arguments`, waiting at most `timeout` seconds
/// (then it is killed and the test fails rather than hangs).
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
         timeout: Double = 300, file: StaticString = #filePath, line: UInt = #line) throws -> Outcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-out-\(UUID().uuidString)")
    let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-err-\(UUID().uuidString)")
    FileManager.default.createFile(atPath: outFile.path, contents: nil)
    FileManager.default.createFile(atPath: errFile.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outFile)
        try? FileManager.default.removeItem(at: errFile)
    }
    process.standardOutput = try FileHandle(forWritingTo: outFile)
    process.standardError = try FileHandle(forWritingTo: errFile)
    process.standardInput = FileHandle.nullDevice
    let start = Date()
    try process.run()
    while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
    if process.isRunning {
        process.terminate()
        usleep(500_000)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        XCTFail("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s", file: file, line: line)
    }
    process.waitUntilExit()
    return Outcome(status: process.terminationStatus,
                   stdout: (try? String(contentsOf: outFile, encoding: .utf8)) ?? "",
                   stderr: (try? String(contentsOf: errFile, encoding: .utf8)) ?? "",
                   seconds: Date().timeIntervalSince(start))
}

/// Runs nntrain.
@discardableResult
func nntrain(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:], timeout: Double = 300,
             file: StaticString = #filePath, line: UInt = #line) throws -> Outcome {
    try runProcess(nntrainBinary, arguments, in: directory, environment: environment, timeout: timeout, file: file, line: line)
}

/// The mpirun on PATH, if Open MPI is installed.
var mpirunPath: String? {
    for dir in ["/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/mpirun") {
        return dir + "/mpirun"
    }
    return nil
}

/// Runs `mpirun -n ranks nntrain arguments`.
@discardableResult
func mpirun(_ ranks: Int, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
            timeout: Double = 300, file: StaticString = #filePath, line: UInt = #line) throws -> Outcome {
    guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed (scripts/install-deps installs openmpi-bin)") }
    return try runProcess(mpirun, ["-n", String(ranks), "--oversubscribe", "--bind-to", "none", nntrainBinary] + arguments,
                   in: directory, environment: environment, timeout: timeout, file: file, line: line)
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-test-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Writes `text` to `directory/name` and returns the path.
@discardableResult
func write(_ text: String, _ name: String, in directory: String) -> String {
    let path = directory + "/" + name
    FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}

/// Asserts a user error: exit status 2, exactly one line on stderr
/// containing every fragment, and no crash report.
func assertUserError(_ outcome: Outcome, contains fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(outcome.status, 2, "exit status; stderr: \(outcome.stderr)", file: file, line: line)
    let lines = outcome.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    XCTAssertEqual(lines.count, 1, "one line on stderr, got: \(outcome.stderr)", file: file, line: line)
    for fragment in fragments {
        XCTAssertTrue(outcome.stderr.contains(fragment), "'\(fragment)' missing from: \(outcome.stderr)", file: file, line: line)
    }
    for crash in ["Fatal error", "Stack dump", "backtrace", "Illegal instruction"] {
        XCTAssertFalse(outcome.stderr.contains(crash), "crash output: \(outcome.stderr)", file: file, line: line)
    }
}

/// Parses metrics.jsonl.
func metricsLines(_ runDirectory: String) -> [[String: Any]] {
    let text = (try? String(contentsOfFile: runDirectory + "/metrics.jsonl", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// A regression run whose learning rate of 1e5 makes the gradients overflow
/// to infinity at step 3 (10 steps per epoch).
func divergingConfig(in directory: String) -> String {
    write("""
        data:
          train: {format: synthetic, name: gaussian, samples: 200, seed: 1}
        model:
          layers:
            - dense: {units: 8, activation: relu}
            - dense: {units: 1}
        loss: mse
        task: regression
        optimizer: {name: sgd, learning_rate: 100000}
        training: {epochs: 5, batch_size: 20}
        """, "diverge.yaml", in: directory)
}

/// A small config with dropout and an L2 penalty, so that every part of the
/// step (masks by global row, penalties after the allreduce) must agree
/// across world sizes and devices.
func smallConfig(in dir: String, samples: Int = 480, batch: Int = 48, epochs: Int = 3) -> String {
    write("""
        data:
          train: {format: synthetic, name: spiral, samples: \(samples), noise: 0.1, seed: 3}
          validation_split: 0.25
          scale: standardize
        model:
          layers:
            - dense: {units: 16, activation: tanh, l2: 0.0001}
            - dropout: {rate: 0.1}
            - dense: {units: 8, activation: relu}
            - dense: {units: 1, activation: sigmoid}
        loss: binary_crossentropy
        optimizer: {name: adam, learning_rate: 0.01}
        training: {epochs: \(epochs), batch_size: \(batch), seed: 5}
        """, "small.yaml", in: dir)
}

/// Every value of a run's final model, tensors in name order.
func modelParameters(_ runDirectory: String) throws -> [Float] {
    let file = try SafeTensors.read(path: runDirectory + "/model.safetensors")
    return file.tensors.sorted { $0.name < $1.name }.flatMap(\.values)
}

/// Debian's Fashion-MNIST directory, or a skip that says how to install it.
func fashionMNISTDirectory() throws -> String {
    let directory = Presets.fashionMNISTDirectory
    guard FileManager.default.fileExists(atPath: directory + "/t10k-images-idx3-ubyte.gz") else {
        throw XCTSkip("Fashion-MNIST is not installed (scripts/install-deps installs dataset-fashion-mnist)")
    }
    return directory
}

// MARK: - Jobs in the background

/// Starts `mpirun arguments` in the background (under `taskset -c cpus`
/// when given); returns a wait for its outcome.
func startMpirun(_ arguments: [String], onCPUs cpus: String? = nil) throws -> () -> Outcome? {
    guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
    let (executable, arguments) = cpus.map { ("/usr/bin/taskset", ["-c", $0, mpirun] + arguments) } ?? (mpirun, arguments)
    final class Box: @unchecked Sendable { var outcome: Outcome? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        box.outcome = try? runProcess(executable, arguments, timeout: 120)
        done.signal()
    }
    return {
        done.wait()
        return box.outcome
    }
}

/// The PID of `rank` among the nntrain processes whose command line holds `marker`.
func rankPID(_ rank: Int, marker: String) -> pid_t? {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for name in names {
        guard let pid = pid_t(name),
              let command = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
              String(decoding: command, as: UTF8.self).contains(marker),
              String(decoding: command, as: UTF8.self).hasPrefix(nntrainBinary),
              let environment = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
        let variables = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
    }
    return nil
}

/// Processes (mpirun and ranks) whose command line holds `marker`.
func processes(_ marker: String) -> [pid_t] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return names.compactMap { name in
        guard let pid = pid_t(name), pid != getpid(),
              let command = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
              String(decoding: command, as: UTF8.self).contains(marker) else { return nil }
        return pid
    }
}

/// Waits until `condition` holds, at most `seconds`.
func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let start = Date()
    while !condition() {
        if Date().timeIntervalSince(start) > seconds { return false }
        usleep(20_000)
    }
    return true
}

/// The heartbeat rank 0 keeps: its global step and time.
func heartbeat(_ run: String) -> (step: Int, time: Double)? {
    guard let data = FileManager.default.contents(atPath: run + "/heartbeat.json"),
          let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let step = object["global_step"] as? Int, let time = object["unix_time"] as? Double else { return nil }
    return (step, time)
}
