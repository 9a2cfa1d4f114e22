// Start-up checks with the real binary: ranks that read different data at
// the same path stop before the first step (mpirun, one working directory
// per rank), an oversize model or IDX header is refused within a second, and
// a read-only run directory is found before any data is loaded.

import Foundation
import XCTest

final class PreflightEndToEndTests: XCTestCase {
    /// A CSV of `rows` samples; `changed` alters one value.
    func csv(rows: Int, changed: Bool = false) -> String {
        "x,y,label\n" + (0..<rows).map { i in
            let x = changed && i == 7 ? 0.5 : Double(i % 10) / 10
            return "\(x),\(Double(i % 7) / 7),\(i % 2)"
        }.joined(separator: "\n") + "\n"
    }

    static let config = """
        data:
          train: {format: csv, path: data.csv, label: label}
        model:
          layers:
            - dense: {units: 4, activation: tanh}
            - dense: {units: 1, activation: sigmoid}
        loss: binary_crossentropy
        optimizer: {name: adam}
        training: {epochs: 2, batch_size: 8}
        """

    /// Rank 0 runs in `a/`, rank 1 in `b/`, with one config and one data
    /// path: `data.csv` beside the config is a link to
    /// /proc/self/cwd/data.csv, so each rank reads its own working directory's file.
    func twoRanks(rank1Data: String) throws -> (Outcome, String) {
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        let dir = temporaryDirectory(self)
        for (name, data) in [("a", csv(rows: 40)), ("b", rank1Data)] {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            write(data, "data.csv", in: dir + "/" + name)
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/data.csv", withDestinationPath: "/proc/self/cwd/data.csv")
        let config = write(Self.config, "run.yaml", in: dir)
        let rank = { (name: String) in ["-n", "1", "-wdir", dir + "/" + name, nntrainBinary, "train", "--config", config,
                                        "--run-dir", dir + "/run", "--no-report"] }
        let outcome = try runProcess(mpirun, ["--oversubscribe", "--bind-to", "none"] + rank("a") + [":"] + rank("b"), timeout: 60)
        return (outcome, dir + "/run")
    }

    func testSameSizeDifferentContentsStopsBeforeTheFirstStep() throws {
        let (outcome, run) = try twoRanks(rank1Data: csv(rows: 40, changed: true))
        XCTAssertEqual(outcome.status, 2, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("rank 0: data mismatch: training data has the same size but different contents on rank 1"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("every rank must read the same files"), outcome.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/metrics.jsonl"), "no epoch ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run), "the run directory made at start-up is removed again")
    }

    func testDifferentRowCountsStopWithoutAnMPIError() throws {
        let (outcome, _) = try twoRanks(rank1Data: csv(rows: 32))
        XCTAssertEqual(outcome.status, 2, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("training data differs in size on rank 1 (rank 1: 32 samples of 2 features, 1 label value; rank 0: 40 samples"), outcome.stderr)
        XCTAssertFalse(outcome.stderr.contains("MPI_ERR"), outcome.stderr)
    }

    /// An IDX images file of `count` images of `rows`×`columns` (header only, or with `pixels`).
    func idx(count: UInt32, rows: UInt32 = 28, columns: UInt32 = 28, magic: UInt32 = 0x803, pixels: Int = 0) -> Data {
        let words = [magic, count] + (magic == 0x803 ? [rows, columns] : [])
        return Data(words.flatMap { w in [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: w >> $0) } }) + Data(count: pixels)
    }

    func testOversizeModelIsRefusedWithinASecond() throws {
        let dir = temporaryDirectory(self)
        FileManager.default.createFile(atPath: dir + "/images", contents: idx(count: 10, pixels: 10 * 784))
        FileManager.default.createFile(atPath: dir + "/labels", contents: idx(count: 10, magic: 0x801, pixels: 10))
        let config = write("""
            data:
              train: {format: idx, images: \(dir)/images, labels: \(dir)/labels}
            model:
              layers:
                - dense: {units: 1000000, activation: relu}
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            optimizer: {name: adam}
            training: {epochs: 1, batch_size: 64}
            """, "wide.yaml", in: dir)
        // A host of 16 GiB, whatever this one has.
        let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/run"],
                                  environment: ["NNTRAIN_MEMORY_LIMIT": "16G"], timeout: 60)
        print("oversize model refused after \(outcome.seconds) s")
        assertUserError(outcome, contains: ["memory: the run needs about 46.1 GiB (parameters 3.0 GiB + gradients 3.0 GiB + optimizer state 5.9 GiB + activations 7.6 GiB + dataset 30.7 KiB + checkpoint copies 26.7 GiB; 795000010 parameters) but NNTRAIN_MEMORY_LIMIT allows 16.0 GiB"])
        XCTAssertLessThan(outcome.seconds, 1)
    }

    func testIDXHeaderPromisingTooMuchIsRefusedBeforeLoading() throws {
        let dir = temporaryDirectory(self)
        // 500 million 28×28 images promised; the file holds the header only.
        // gzip-compressed, its real size cannot be seen without inflating it.
        FileManager.default.createFile(atPath: dir + "/images", contents: idx(count: 500_000_000))
        _ = try runProcess("/bin/gzip", ["-n", dir + "/images"])
        FileManager.default.createFile(atPath: dir + "/labels", contents: idx(count: 500_000_000, magic: 0x801))
        let config = write("""
            data:
              train: {format: idx, images: \(dir)/images.gz, labels: \(dir)/labels}
            model:
              layers:
                - dense: {units: 10, activation: softmax}
            loss: sparse_categorical_crossentropy
            training: {epochs: 1, batch_size: 64}
            """, "huge.yaml", in: dir)
        let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/run"], timeout: 60)
        assertUserError(outcome, contains: ["memory: the run needs about", "dataset 1.4 TiB"])
        XCTAssertLessThan(outcome.seconds, 5)
    }

    func testReadOnlyRunDirectoryIsFoundBeforeLoading() throws {
        let dir = temporaryDirectory(self)
        let mountPoint = dir + "/ro"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard (try? runProcess("/bin/mount", ["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", mountPoint]))?.status == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root); skipped")
        }
        defer { _ = try? runProcess("/bin/umount", [mountPoint]) }
        // Fashion-MNIST-sized loading would come first without the check: a missing file shows it did not.
        let config = write(Self.config.replacingOccurrences(of: "data.csv", with: dir + "/missing.csv"), "ro.yaml", in: dir)
        let outcome = try nntrain(["train", "--config", config, "--run-dir", mountPoint], timeout: 60)
        assertUserError(outcome, contains: ["run directory \(mountPoint): cannot create '\(mountPoint)/checkpoints': the file system is read-only (EROFS)"])
    }
}
