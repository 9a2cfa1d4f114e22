// Checkpoints that survive anything: signals, SIGKILL, a crash mid-write,
// damaged files; and resume that is bit-identical to an uninterrupted run.

import Foundation
import XCTest
import NNTraining
import SafeTensors

final class CheckpointTests: XCTestCase {
    func config(in dir: String, epochs: Int = 100, schedule: String = "cosine") -> String {
        write("""
            data:
              train: {format: synthetic, name: spiral, samples: 2000, noise: 0.1, seed: 3}
              validation_split: 0.2
            model:
              layers:
                - dense: {units: 64, activation: tanh}
                - dropout: {rate: 0.1}
                - dense: {units: 64, activation: relu}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.005, schedule: {name: \(schedule)}}
            training: {epochs: \(epochs), batch_size: 16, seed: 9}
            """, "spiral.yaml", in: dir)
    }

    /// Final parameters of a finished run, by name.
    func model(_ runDirectory: String) throws -> [NamedTensor] {
        try SafeTensors.read(path: runDirectory + "/model.safetensors").tensors
    }

    /// The uninterrupted run every interrupted one must match bit for bit.
    func reference(_ config: String, in dir: String) throws -> [NamedTensor] {
        let outcome = try nntrain(["train", "--config", config, "--run-dir", dir + "/reference"])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        return try model(dir + "/reference")
    }

    /// Starts `executable arguments`, waits until `ready()` holds, sends
    /// `signal` to every process whose command line names `marker`, and
    /// returns the finished process's outcome.
    func interrupt(_ executable: String, _ arguments: [String], marker: String, signal: Int32,
                   environment: [String: String] = [:], when ready: @escaping () -> Bool) throws -> Outcome {
        final class Box: @unchecked Sendable { var outcome: Outcome? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            box.outcome = try? runProcess(executable, arguments, environment: environment, timeout: 300)
            done.signal()
        }
        let start = Date()
        while !ready() && Date().timeIntervalSince(start) < 120 { usleep(10_000) }
        XCTAssertTrue(ready(), "the run never reached the point to interrupt")
        _ = try runProcess("/usr/bin/pkill", ["-\(signal)", "-f", marker])
        done.wait()
        return try XCTUnwrap(box.outcome)
    }

    func epochsLogged(_ runDirectory: String) -> Int { metricsLines(runDirectory).count }

    /// Every epoch's loss and accuracy in `run` equal the reference run's
    /// (up to float summation order in the interrupted epoch).
    func assertSameMetrics(_ run: String, _ reference: String, file: StaticString = #filePath, line: UInt = #line) {
        let a = metricsLines(run), b = metricsLines(reference)
        XCTAssertEqual(a.map { $0["epoch"] as? Int }, b.map { $0["epoch"] as? Int }, file: file, line: line)
        for (x, y) in zip(a, b) {
            for key in ["loss", "accuracy", "val_loss", "val_accuracy"] {
                let u = x[key] as? Double ?? .nan, v = y[key] as? Double ?? .nan
                XCTAssertEqual(u, v, accuracy: 1e-4 * max(1, abs(v)), "epoch \(x["epoch"] ?? "?") \(key)", file: file, line: line)
            }
        }
    }

    // MARK: - Signals and kills

    func testSIGTERMStopsAtAStepBoundaryAndResumeIsBitIdentical() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir)
        let expected = try reference(config, in: dir)
        let run = dir + "/stopped"
        let stopped = try interrupt(nntrainBinary, ["train", "--config", config, "--run-dir", run], marker: run, signal: SIGTERM) {
            self.epochsLogged(run) >= 4
        }
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertTrue(stopped.stdout.contains("stopped by signal"), stopped.stdout)
        XCTAssertTrue(stopped.stdout.contains("nntrain train --run-dir \(run) --resume"), stopped.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/model.safetensors"))

        let resumed = try nntrain(["train", "--run-dir", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming from \(run)/checkpoints/step-"), resumed.stdout)
        XCTAssertEqual(try model(run), expected)
        // One metrics line per epoch, none lost or doubled, and the same figures.
        XCTAssertEqual(metricsLines(run).map { $0["epoch"] as? Int }, (1...100).map { $0 })
        assertSameMetrics(run, dir + "/reference")
    }

    func testAStopInTheFirstEpochWarnsOfNothing() throws {
        let dir = temporaryDirectory(self)
        let config = write("""
            data:
              train: {format: synthetic, name: spiral, samples: 200000, seed: 3}
            model:
              layers:
                - dense: {units: 64, activation: tanh}
                - dense: {units: 1, activation: sigmoid}
            loss: binary_crossentropy
            training: {epochs: 2, batch_size: 8}
            """, "long-epoch.yaml", in: dir)
        let run = dir + "/stopped"
        let stopped = try interrupt(nntrainBinary, ["train", "--config", config, "--run-dir", run], marker: run, signal: SIGINT) {
            FileManager.default.fileExists(atPath: run + "/run.json")
        }
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertTrue(stopped.stdout.contains("stopped by signal at epoch 1,"), stopped.stdout)
        XCTAssertFalse((stopped.stdout + stopped.stderr).contains("warning"), "no metrics.jsonl yet is no reason for a report warning: \(stopped.stdout)\(stopped.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/metrics.jsonl"))
    }

    func testSIGKILLAfterACheckpointThenResumeIsBitIdentical() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir)
        let expected = try reference(config, in: dir)
        let run = dir + "/killed"
        let killed = try interrupt(nntrainBinary, ["train", "--config", config, "--run-dir", run, "--checkpoint-every", "7"],
                                   marker: run, signal: SIGKILL) { self.epochsLogged(run) >= 3 }
        XCTAssertNotEqual(killed.status, 0)
        let resumed = try nntrain(["train", "--run-dir", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try model(run), expected)
    }

    func testUnderMpirunSIGTERMAndSIGKILLResumeBitIdentical() throws {
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        let dir = temporaryDirectory(self)
        let config = config(in: dir)
        let uninterrupted = try runProcess(mpirun, ["-n", "2", "--oversubscribe", nntrainBinary, "train", "--config", config,
                                                    "--run-dir", dir + "/mpi-reference"])
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.stderr)
        let expected = try model(dir + "/mpi-reference")

        for (signal, name) in [(SIGTERM, "term"), (SIGKILL, "kill")] {
            let run = dir + "/mpi-\(name)"
            let marker = signal == SIGTERM ? "^\(mpirun).*\(run)" : run
            let stopped = try interrupt(mpirun, ["-n", "2", "--oversubscribe", nntrainBinary, "train", "--config", config,
                                                 "--run-dir", run, "--checkpoint-every", "11"],
                                        marker: marker, signal: signal) { self.epochsLogged(run) >= 3 }
            if signal == SIGTERM {
                XCTAssertTrue(stopped.stdout.contains("stopped by signal"), stopped.stdout + stopped.stderr)
                XCTAssertTrue(stopped.stdout.contains("mpirun -n 2 nntrain train --run-dir \(run) --resume"), stopped.stdout)
            }
            let resumed = try runProcess(mpirun, ["-n", "2", "--oversubscribe", nntrainBinary, "train", "--run-dir", run, "--resume"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try model(run), expected, "resume after \(name)")
            assertSameMetrics(run, dir + "/mpi-reference")
        }
    }

    /// With gradient compression every rank's rounding residual rides in
    /// the checkpoint, so a killed two-rank run resumes bit for bit.
    func testCompressedGradientsResumeBitIdenticalUnderMpirun() throws {
        guard let mpirun = mpirunPath else { throw XCTSkip("mpirun is not installed") }
        let dir = temporaryDirectory(self)
        let plain = config(in: dir, epochs: 30)
        let config = write(try String(contentsOfFile: plain, encoding: .utf8)
            .replacingOccurrences(of: "seed: 9}", with: "seed: 9, gradient_compression: bf16}"), "bf16.yaml", in: dir)
        func train(_ arguments: [String]) throws -> Outcome {
            try runProcess(mpirun, ["-n", "2", "--oversubscribe", nntrainBinary, "train"] + arguments)
        }
        let reference = try train(["--config", config, "--run-dir", dir + "/reference"])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertTrue(reference.stdout.contains("gradients: allreduce of bf16 with error feedback"), reference.stdout)
        let float = try train(["--config", plain, "--run-dir", dir + "/float"])
        XCTAssertEqual(float.status, 0, float.stderr)
        let expected = try model(dir + "/reference")
        XCTAssertNotEqual(expected, try model(dir + "/float"), "bf16 sums round, so the model differs from Float32's")

        let run = dir + "/killed"
        let killed = try interrupt(mpirun, ["-n", "2", "--oversubscribe", nntrainBinary, "train", "--config", config,
                                            "--run-dir", run, "--checkpoint-every", "11"],
                                   marker: run, signal: SIGKILL) { self.epochsLogged(run) >= 3 }
        XCTAssertNotEqual(killed.status, 0)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").filter { $0.hasSuffix(".safetensors") }
        let newest = try XCTUnwrap(checkpoints.sorted().last)
        let residual = try XCTUnwrap(SafeTensors.read(path: run + "/checkpoints/" + newest).tensors
            .first { $0.name == "gradient_compression.residual" })
        XCTAssertEqual(residual.shape.first, 2, "one residual per rank")
        XCTAssertTrue(residual.values.contains { $0 != 0 }, "rounding left something behind")
        let resumed = try train(["--run-dir", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try model(run), expected)
    }

    func testKillDuringACheckpointWriteKeepsThePreviousOne() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir, epochs: 6)
        let expected = try reference(config, in: dir)
        let run = dir + "/torn"
        let checkpoints = run + "/checkpoints"
        // The second checkpoint write stops halfway; the test kills it there.
        let killed = try interrupt(nntrainBinary, ["train", "--config", config, "--run-dir", run], marker: run, signal: SIGKILL,
                                   environment: ["NNTRAIN_TEST_WRITE_PAUSE_SECONDS": "60", "NNTRAIN_TEST_WRITE_PAUSE_SKIP": "1"]) {
            ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []).contains { $0.contains(".tmp-") }
        }
        XCTAssertNotEqual(killed.status, 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoints).sorted()
        XCTAssertEqual(names.filter { $0.hasPrefix("step-") }, ["step-00000100.safetensors"], "\(names)")
        let resumed = try nntrain(["train", "--run-dir", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("step-00000100.safetensors"), resumed.stdout)
        XCTAssertEqual(try model(run), expected)
    }

    // MARK: - Damage

    func testDamagedCheckpointsAreReportedAndSkipped() throws {
        let dir = temporaryDirectory(self)
        // A constant rate: a 3-epoch run must be the start of the 4-epoch one.
        let config = config(in: dir, epochs: 4, schedule: "constant")
        let expected = try reference(config, in: dir)
        // Train 3 of 4 epochs, then damage the newest checkpoint in two ways.
        let run = dir + "/damaged"
        XCTAssertEqual(try nntrain(["train", "--config", config, "--run-dir", run, "--epochs", "3"]).status, 0)
        let newest = run + "/checkpoints/step-00000300.safetensors"
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: newest))
        let original = bytes

        bytes[bytes.count - 100] ^= 0x01
        FileManager.default.createFile(atPath: newest, contents: bytes)
        assertUserError(try nntrain(["train", "--resume", newest]), contains: [newest, "checksum mismatch"])

        FileManager.default.createFile(atPath: newest, contents: original.prefix(original.count / 2))
        assertUserError(try nntrain(["train", "--resume", newest]), contains: [newest, "truncated"])

        // `--resume` without a path skips it with a warning and takes the
        // previous checkpoint; training the 4th epoch then ends exactly where
        // the uninterrupted run did.
        let resumed = try nntrain(["train", "--run-dir", run, "--resume", "--epochs", "4"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("skipping damaged checkpoint: \(newest): truncated"), resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("step-00000200.safetensors"), resumed.stdout)
        XCTAssertTrue(resumed.stdout.contains("epochs 3 → 4"), resumed.stdout)
        XCTAssertEqual(try model(run), expected)
    }

    func testInitFromWeightsOfTheWrongShapeIsRejected() throws {
        let dir = temporaryDirectory(self)
        let config = config(in: dir, epochs: 1)
        XCTAssertEqual(try nntrain(["train", "--preset", "xor", "--run-dir", dir + "/xor"]).status, 0)
        assertUserError(try nntrain(["train", "--config", config, "--init-from", dir + "/xor/model.safetensors", "--run-dir", dir + "/x"]),
                        contains: ["xor/model.safetensors", "layers.0.weight", "shape [4, 2]", "[64, 2]"])
    }

    // MARK: - Other tools

    func testPythonReadsTheModelAndItsWeightsStartATraining() throws {
        guard let python = ProcessInfo.processInfo.environment["NNTRAIN_PYTHON"],
              (try? runProcess(python, ["-c", "import safetensors.numpy, numpy"]))?.status == 0 else {
            throw XCTSkip("no Python with safetensors and numpy (scripts/test installs them into .venv when pip can reach PyPI)")
        }
        let dir = temporaryDirectory(self)
        XCTAssertEqual(try nntrain(["train", "--preset", "xor", "--run-dir", dir + "/xor"]).status, 0)
        // PyTorch nn.Linear layout: weight [out, in], bias [out].
        let read = try runProcess(python, ["-c", """
            from safetensors.numpy import load_file
            t = load_file('\(dir)/xor/model.safetensors')
            print(sorted((k, v.shape) for k, v in t.items()))
            """])
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       "[('layers.0.bias', (4,)), ('layers.0.weight', (4, 2)), ('layers.1.bias', (1,)), ('layers.1.weight', (1, 4))]",
                       read.stderr)

        // Weights written by Python that solve XOR by hand: with them as the
        // start, one epoch at a tiny learning rate is already perfect.
        let written = try runProcess(python, ["-c", """
            import numpy as np
            from safetensors.numpy import save_file
            w0 = np.array([[6, 6], [-6, -6], [0, 0], [0, 0]], np.float32)
            b0 = np.array([-3, 9, 0, 0], np.float32)
            w1 = np.array([[8, 8, 0, 0]], np.float32)
            b1 = np.array([-12], np.float32)
            save_file({'layers.0.weight': w0, 'layers.0.bias': b0, 'layers.1.weight': w1, 'layers.1.bias': b1}, '\(dir)/hand.safetensors')
            """])
        XCTAssertEqual(written.status, 0, written.stderr)
        let trained = try nntrain(["train", "--preset", "xor", "--epochs", "1", "--learning-rate", "0.000001",
                                   "--init-from", dir + "/hand.safetensors", "--run-dir", dir + "/tuned"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertTrue(trained.stdout.contains("initial weights from \(dir)/hand.safetensors"), trained.stdout)
        XCTAssertTrue(trained.stdout.contains("test - loss") && trained.stdout.contains("accuracy: 1.0000"), trained.stdout)
    }
}
