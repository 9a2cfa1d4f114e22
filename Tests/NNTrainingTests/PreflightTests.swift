// What start-up checks before the first step: every rank's data against
// rank 0's (ranks as threads), the memory a model needs against a limit, and
// the run directory: writable for real, not under a file, with room for the
// checkpoints it keeps. Tests that mount file systems need root; they skip
// when they cannot mount and unmount what they mounted.

import Foundation
import XCTest
import NNCore
import NNData
import NNDistributed
import NNTraining

final class PreflightTests: XCTestCase {
    static let spiral = """
        data:
          train: {format: synthetic, name: spiral, samples: 100, noise: 0.1, seed: 1}
          validation_split: 0.2
          test: {format: synthetic, name: spiral, samples: 30, noise: 0.1, seed: 2}
        model:
          layers:
            - dense: {units: 8, activation: tanh}
            - dense: {units: 1, activation: sigmoid}
        loss: binary_crossentropy
        optimizer: {name: adam}
        training: {epochs: 1, batch_size: 10}
        """

    // MARK: - Data agreement

    /// Each rank prepares the data `yaml(rank)` names and compares it with
    /// rank 0's; returns every rank's error message (nil: it agreed).
    func agreement(ranks: Int, yaml: @escaping @Sendable (Int) -> String) throws -> [String?] {
        try withDeadline(30) {
            try ThreadCommunicator.run(ranks: ranks) { communicator -> String? in
                do {
                    let config = try ConfigReader.parse(yaml(communicator.rank), file: "test")
                    let data = try DataLoading.prepare(config, objective: try config.objective(), includeTest: true)
                    try agree(on: data, communicator)
                    return nil
                } catch let failure as CollectiveFailure {
                    return failure.message ?? "(stopped, rank 0 reports)"
                }
            }
        }
    }

    func testSameDataAgrees() throws {
        XCTAssertEqual(try agreement(ranks: 3) { _ in Self.spiral }, [nil, nil, nil])
    }

    func testSameSizeDifferentContentsStopsEveryRank() throws {
        // Rank 2's test split is drawn from another seed: same size, other values.
        let messages = try agreement(ranks: 3) { rank in
            rank == 2 ? Self.spiral.replacingOccurrences(of: "seed: 2}", with: "seed: 9}") : Self.spiral
        }
        XCTAssertEqual(messages.filter { $0 == nil }.count, 0, "every rank stops: \(messages)")
        let report = try XCTUnwrap(messages[0])
        XCTAssertTrue(report.hasPrefix("rank 0: data mismatch: test data has the same size but different contents on rank 2"), report)
        XCTAssertTrue(report.contains("every rank must read the same files"), report)
        XCTAssertFalse(report.contains("training data"), "the training split agrees: \(report)")
        XCTAssertTrue(messages[2]?.hasPrefix("rank 2: data mismatch") == true, "the differing rank says it too: \(messages)")
        XCTAssertEqual(messages[1], "(stopped, rank 0 reports)")
    }

    func testDifferentSampleCountIsASizeMismatch() throws {
        let messages = try agreement(ranks: 2) { rank in
            rank == 1 ? Self.spiral.replacingOccurrences(of: "samples: 100", with: "samples: 90") : Self.spiral
        }
        let report = try XCTUnwrap(messages[0])
        XCTAssertTrue(report.contains("training data differs in size on rank 1 (rank 1: 72 samples of 2 features, 1 label value; rank 0: 80 samples of 2 features, 1 label value)"), report)
        XCTAssertTrue(report.contains("validation data differs in size on rank 1"), report)
        XCTAssertNotNil(messages[1])
    }

    // MARK: - Memory

    /// The model: 1,000,000 units after 784 inputs, ten classes, Adam.
    static let wide = """
        data:
          train: {format: synthetic, name: spiral, samples: 100}
        model:
          layers:
            - dense: {units: 1000000, activation: relu}
            - dense: {units: 10, activation: softmax}
        loss: sparse_categorical_crossentropy
        optimizer: {name: adam}
        training: {epochs: 1, batch_size: 64}
        """

    func testEstimateOfAWideLayer() throws {
        let config = try ConfigReader.parse(Self.wide, file: "wide.yaml")
        let shape = DataShape(samples: 70_000, featureCount: 784, labelWidth: 1)
        let estimate = try MemoryBudget.estimate(config, shape: shape, worldSize: 1)
        XCTAssertEqual(estimate.parameterCount, 784 * 1_000_000 + 1_000_000 + 1_000_000 * 10 + 10)
        XCTAssertEqual(estimate.parameters, estimate.parameterCount * 4)
        XCTAssertEqual(estimate.gradients, estimate.parameters)
        XCTAssertEqual(estimate.optimizerState, 2 * estimate.parameters, "Adam keeps two slots")
        XCTAssertEqual(estimate.dataset, 70_000 * 785 * 4)
        // 1024 rows (the evaluation chunk): outputs + input gradients of both
        // layers, the loss head, the batch's inputs and sparse targets.
        XCTAssertEqual(estimate.activations, 1024 * 4 * ((1_000_000 + 784) + (10 + 1_000_000) + 2 * 10 + (784 + 1)))
        let limit = HostMemory.Limit(bytes: 8 << 30, source: "a test limit")
        XCTAssertThrowsError(try MemoryBudget.check(estimate, ranksOnHost: 1, limit: limit)) { error in
            let message = (error as? UserError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("memory: the run needs about 46.3 GiB (parameters 3.0 GiB + gradients 3.0 GiB + optimizer state 5.9 GiB + activations 7.6 GiB + dataset 209.6 MiB + checkpoint copies 26.7 GiB; 795000010 parameters) but a test limit allows 8.0 GiB"), message)
        }
        // Enough for one rank is not enough for two on the same host.
        let small = MemoryEstimate(parameters: 100, gradients: 100, optimizerState: 200, activations: 100, dataset: 500,
                                   checkpointCopies: 0, parameterCount: 25)
        let oneRank = HostMemory.Limit(bytes: 1500, source: "x")
        XCTAssertNoThrow(try MemoryBudget.check(small, ranksOnHost: 1, limit: oneRank))
        XCTAssertThrowsError(try MemoryBudget.check(small, ranksOnHost: 2, limit: oneRank)) { error in
            XCTAssertTrue("\(error)".contains("× 2 ranks on this host"), "\(error)")
        }
        XCTAssertNoThrow(try MemoryBudget.check(small, ranksOnHost: 2, limit: oneRank, datasetLoaded: true))

        // A shared copy counts once per host; a mapped one only by its labels, on every rank.
        var labelled = small
        labelled.labels = 10
        let tight = HostMemory.Limit(bytes: 1200, source: "x")
        XCTAssertThrowsError(try MemoryBudget.check(labelled, ranksOnHost: 2, limit: tight, datasetShared: true)) {
            XCTAssertTrue("\($0)".contains("dataset 500 B shared by them"), "\($0)")
        }
        XCTAssertNoThrow(try MemoryBudget.check(labelled, ranksOnHost: 2, limit: tight, datasetMapped: true))
        labelled.labels = 400
        XCTAssertThrowsError(try MemoryBudget.check(labelled, ranksOnHost: 2, limit: tight, datasetMapped: true)) {
            XCTAssertTrue("\($0)".contains("labels 400 B) × 2 ranks") && "\($0)".contains("rows are mapped from the data cache"), "\($0)")
        }
    }

    func testAbsurdSizesSaturateInsteadOfTrapping() throws {
        let config = try ConfigReader.parse(Self.wide.replacingOccurrences(of: "units: 1000000", with: "units: 4000000000000000000"),
                                            file: "absurd.yaml")
        XCTAssertNil(MemoryBudget.parameterCount(inputSize: 784, layers: config.layerSpecs))
        let estimate = try MemoryBudget.estimate(config, shape: DataShape(samples: 10, featureCount: 784, labelWidth: 1), worldSize: 1)
        XCTAssertEqual(estimate.total, Int.max)
        XCTAssertThrowsError(try MemoryBudget.check(estimate, ranksOnHost: 4, limit: HostMemory.Limit(bytes: 1 << 40, source: "x"))) {
            XCTAssertTrue("\($0)".contains("more than 8 EiB"), "\($0)")
        }
        var epochs = try ConfigReader.parse(Self.spiral, file: "e.yaml")
        epochs.training.epochs = Int.max / 2
        XCTAssertThrowsError(try TrainingLimits.check(epochs, trainingSamples: 100)) {
            XCTAssertTrue("\($0)".hasPrefix("training.epochs:"), "\($0)")
        }
        epochs.training.batchSize = Int.max
        XCTAssertThrowsError(try TrainingLimits.check(epochs, trainingSamples: 100)) {
            XCTAssertTrue("\($0)".hasPrefix("training.batch_size:"), "\($0)")
        }
    }

    func testHostMemoryIsFound() throws {
        let limit = try XCTUnwrap(HostMemory.limit(), "no cgroup limit and no /proc/meminfo")
        XCTAssertGreaterThan(limit.bytes, 1 << 20)
        XCTAssertEqual(ByteCount.parse("8G"), 8 << 30)
        XCTAssertEqual(ByteCount.parse("1.5GiB"), 3 << 29)
        XCTAssertEqual(ByteCount.parse("4096"), 4096)
        XCTAssertNil(ByteCount.parse("lots"))
    }

    func testShapeFromAnIDXHeaderWithoutLoading() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A header promising a billion 28×28 images, and nothing more.
        let header = [0, 0, 8, 3].map(UInt8.init) + bigEndian(1_000_000_000) + bigEndian(28) + bigEndian(28)
        _ = FileManager.default.createFile(atPath: dir + "/huge.gz", contents: Data(try gzipped(header)))
        let yaml = Self.spiral.replacingOccurrences(of: "{format: synthetic, name: spiral, samples: 100, noise: 0.1, seed: 1}",
                                                    with: "{format: idx, images: \(dir)/huge.gz, labels: \(dir)/huge.gz}")
        let config = try ConfigReader.parse(yaml, file: "huge.yaml")
        let shape = try XCTUnwrap(DataShape.expected(config))
        XCTAssertEqual(shape, DataShape(samples: 1_000_000_000 + 30, featureCount: 784, labelWidth: 1))
        let estimate = try MemoryBudget.estimate(config, shape: shape, worldSize: 1)
        XCTAssertThrowsError(try MemoryBudget.check(estimate, ranksOnHost: 1, limit: HostMemory.Limit(bytes: 1 << 40, source: "x"))) {
            XCTAssertTrue("\($0)".contains("dataset 2.9 TiB"), "\($0)")
        }
        // A CSV's shape is known only once it is loaded.
        XCTAssertNil(DataShape.expected(try ConfigReader.parse(Self.spiral.replacingOccurrences(
            of: "{format: synthetic, name: spiral, samples: 100, noise: 0.1, seed: 1}", with: "{format: csv, path: x.csv, label: y}"), file: "c")))
    }

    // MARK: - Run directory

    func testRunDirectoryIsCreatedAndTestWritten() throws {
        let base = temporaryDirectory()
        let dir = base + "/a/b/run"
        let created = try RunDirectoryCheck.prepare(dir)
        XCTAssertEqual(created, base, "the outermost directory it made")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints"), [], "the test file is removed")
        RunDirectoryCheck.removeCreated(created!, inside: dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: created!), "an empty tree it made is removed again")
    }

    func testPathUnderARegularFile() throws {
        let base = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: base + "/file", contents: Data("x".utf8))
        assertMessage(try RunDirectoryCheck.prepare(base + "/file/run"),
                      "run directory \(base)/file/run: cannot create it: '\(base)/file' is a file, not a directory")
        assertMessage(try RunDirectoryCheck.prepare(base + "/file"),
                      "run directory \(base)/file: cannot create it: '\(base)/file' is a file, not a directory")
    }

    func testReadOnlyFileSystem() throws {
        let mountPoint = try mount(options: "ro,size=64k")
        // The directory exists (the mount point): only a real write finds the read-only file system.
        assertMessage(try RunDirectoryCheck.prepare(mountPoint), "(EROFS)")
        assertMessage(try RunDirectoryCheck.prepare(mountPoint + "/run"),
                      "run directory \(mountPoint)/run: cannot create it: the file system is read-only (EROFS)")
    }

    func testReadOnlyBindMountOfAnExistingRunDirectory() throws {
        // Every directory exists, so only the test write can find out.
        let source = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: source + "/checkpoints", withIntermediateDirectories: true)
        let point = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        guard run("/bin/mount", ["--bind", source, point]) == 0 else { throw XCTSkip("cannot bind-mount here (needs root); skipped") }
        addTeardownBlock { _ = self.run("/bin/umount", [point]) }
        guard run("/bin/mount", ["-o", "remount,ro,bind", point]) == 0 else { throw XCTSkip("cannot remount read-only here; skipped") }
        assertMessage(try RunDirectoryCheck.prepare(point),
                      "run directory \(point): a test write failed: the file system is read-only (EROFS)")
        XCTAssertNoThrow(try RunDirectoryCheck.prepare(source), "the same directory is writable elsewhere")
    }

    func testNoSpaceForTheCheckpoints() throws {
        let mountPoint = try mount(options: "size=64k")
        let config = try ConfigReader.parse(Self.spiral.replacingOccurrences(of: "units: 8", with: "units: 2000"), file: "s")
        let run = mountPoint + "/run"
        try RunDirectoryCheck.prepare(run)
        let parameters = try XCTUnwrap(MemoryBudget.parameterCount(inputSize: 2, layers: config.layerSpecs))
        XCTAssertEqual(parameters, 2 * 2000 + 2000 + 2000 + 1)
        let checkpoint = RunDirectoryCheck.checkpointBytes(config, parameterCount: parameters)
        XCTAssertGreaterThan(checkpoint, 3 * parameters * 4)
        assertMessage(try RunDirectoryCheck.checkSpace(run, config: config, parameterCount: parameters, keep: 3),
                      "not enough space for the checkpoints: needs \(ByteCount.format(4 * checkpoint)) for 4 checkpoints of \(ByteCount.format(checkpoint)) (--keep-checkpoints 3 + 1 being written) but the file system has ")
        XCTAssertNoThrow(try RunDirectoryCheck.checkSpace(run, config: config, parameterCount: 10, keep: 3))
        // Filled to the last block, the test write itself fails with ENOSPC.
        _ = FileManager.default.createFile(atPath: mountPoint + "/fill", contents: Data(count: 64 << 10))
        assertMessage(try RunDirectoryCheck.prepare(mountPoint + "/other"), "no space left on the file system")
    }

    // MARK: - Helpers

    /// Mounts a tmpfs with `options` on a fresh directory, unmounted after the
    /// test; skips when this process may not mount (not root, no CAP_SYS_ADMIN).
    func mount(options: String) throws -> String {
        let point = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        guard run("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", point]) == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root); skipped")
        }
        addTeardownBlock { _ = self.run("/bin/umount", [point]) }
        return point
    }

    @discardableResult
    func run(_ executable: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func assertMessage<T>(_ body: @autoclosure () throws -> T, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("no error; expected one containing: \(fragment)", file: file, line: line)
        } catch let error as UserError {
            XCTAssertTrue(error.message.contains(fragment), "'\(fragment)' missing from: \(error.message)", file: file, line: line)
        } catch {
            XCTFail("not a UserError: \(error)", file: file, line: line)
        }
    }

    func bigEndian(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) } }

    /// Gzip through the system's `gzip`, as a user would make the file.
    func gzipped(_ bytes: [UInt8]) throws -> [UInt8] {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/f", contents: Data(bytes))
        guard run("/bin/gzip", ["-n", dir + "/f"]) == 0 || run("/usr/bin/gzip", ["-n", dir + "/f"]) == 0 else {
            throw XCTSkip("gzip is not installed")
        }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/f.gz")))
    }
}

