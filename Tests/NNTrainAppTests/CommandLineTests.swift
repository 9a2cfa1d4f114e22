import NNCore
import NNDistributed
import NNTraining
import XCTest
@testable import NNTrainApp

final class CommandLineTests: XCTestCase {
    func testBareResumeMeansTheLatestCheckpointAndAPathIsKept() throws {
        XCTAssertEqual(try CommandLineArguments.normalized(["train", "--resume"]), ["train", "--resume-latest"])
        XCTAssertEqual(try CommandLineArguments.normalized(["train", "--resume", "--epochs", "3"]),
                       ["train", "--resume-latest", "--epochs", "3"])
        XCTAssertEqual(try CommandLineArguments.normalized(["train", "--resume", "run/checkpoints/step-1.safetensors"]),
                       ["train", "--resume", "run/checkpoints/step-1.safetensors"])
        let latest = try Train.parse(["--resume-latest"]).resume
        XCTAssertEqual(latest, .latest)
        XCTAssertEqual(try Train.parse(["--resume", "a.safetensors"]).resume, .file("a.safetensors"))
        XCTAssertNil(try Train.parse([]).resume)
    }

    func testNegativeNumbersAreValuesAndGetTheRangeError() throws {
        XCTAssertThrowsError(try Train.parse(["--learning-rate", "-1"])) { error in
            XCTAssertTrue(Train.message(for: error).contains("--learning-rate: must be a positive number (got -1.0)"), "\(error)")
        }
        XCTAssertThrowsError(try Train.parse(["--epochs", "-3", "--seed", "4"])) { error in
            XCTAssertTrue(Train.message(for: error).contains("--epochs: must be a positive integer (got -3)"), "\(error)")
        }
        // A flag after an option that takes a path is still a flag.
        XCTAssertThrowsError(try Train.parse(["--config", "--allow-tf32"]))
    }

    func testOnlyTrainRewritesABareResume() throws {
        XCTAssertEqual(try CommandLineArguments.normalized(["--resume"]), ["--resume-latest"])
        XCTAssertEqual(try CommandLineArguments.normalized(["evaluate", "--resume"]), ["evaluate", "--resume"])
    }

    func testAMisspeltSubcommandIsNamed() {
        XCTAssertThrowsError(try CommandLineArguments.normalized(["evalute", "--model", "m"])) { error in
            let message = (error as? UserError)?.message ?? ""
            XCTAssertTrue(message.hasPrefix("unknown command 'evalute'; did you mean 'evaluate'?"), message)
        }
        XCTAssertNoThrow(try CommandLineArguments.normalized(["evaluate", "--model", "m"]))
        XCTAssertNoThrow(try CommandLineArguments.normalized(["--epochs", "2"]), "options alone go to the default command")
    }

    func testTheCommandHandsOnLibraryTypes() throws {
        let job = try Train.parse(["--preset", "xor", "--epochs", "4", "--batch-size", "2", "--learning-rate", "0.5",
                                   "--seed", "9", "--checkpoint-every", "7", "--keep-checkpoints", "2"])
        XCTAssertEqual(job.preset, "xor")
        XCTAssertEqual(job.overrides, ConfigOverrides(epochs: 4, batchSize: 2, learningRate: 0.5, seed: 9))
        XCTAssertEqual(job.schedule.checkpointEvery, 7)
        XCTAssertEqual(job.keepCheckpoints, 2)
        XCTAssertTrue(job.tensorBoard, "TensorBoard files are written unless turned off")
        XCTAssertFalse(try Train.parse(["--no-tensorboard"]).tensorBoard)
    }

    func testWritePauseParsing() {
        XCTAssertNil(Environment.writePause(nil))
        XCTAssertNil(Environment.writePause(""))
        XCTAssertNil(Environment.writePause("soon"))
        XCTAssertNil(Environment.writePause("0"))
        XCTAssertNil(Environment.writePause("-3"))
        XCTAssertNil(Environment.writePause("nan"))
        XCTAssertEqual(Environment.writePause("2.5"), 2.5)
        XCTAssertEqual(Environment.writePause("1e9"), 86_400)
    }

    func testTheStartUpLineShowsTheWholeOptimizer() throws {
        let config = try ConfigReader.parse("""
            data: {train: {format: synthetic, name: xor}}
            model: {layers: [{dense: {units: 1, activation: sigmoid}}]}
            loss: binary_crossentropy
            optimizer: {name: sgd, learning_rate: 0.05, momentum: 0.9, nesterov: true, schedule: {name: step, decay_steps: 100, decay_rate: 0.5, warmup_steps: 10}}
            """, file: "test")
        XCTAssertEqual(Console.describe(config.optimizer),
                       "sgd, learning_rate 0.05, momentum 0.9, nesterov, schedule step (×0.5 every 100 steps), warm-up 10 steps")
        let adam = try Presets.config("fashion-mnist").optimizer
        XCTAssertEqual(Console.describe(adam),
                       "adam, learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-07, schedule cosine (over the run, alpha 0.0)")
    }

    func testInspectTakesTheFileAsItsArgument() throws {
        XCTAssertNoThrow(try CommandLineArguments.normalized(["inspect", "run/model.safetensors"]))
        let command = try Inspect.parse(["run/model.safetensors", "--json"])
        XCTAssertEqual(command.model, "run/model.safetensors")
        XCTAssertTrue(command.json)
        XCTAssertFalse(try Inspect.parse(["m.safetensors"]).json)
        XCTAssertThrowsError(try Inspect.parse([]), "the file is required")
    }

    func testTheReportsTablesAlignTheirColumns() {
        let lines = Table(header: ["Name", "Count"], rightAligned: [1], rows: [["a", "1"], ["longer", "123"]]).lines
        XCTAssertEqual(lines, ["______________", "Name     Count", "==============", "a            1",
                               "longer     123", "=============="])
    }
}

final class AllreduceChoiceTests: XCTestCase {
    func testTheFlagTakesAutoDefaultANumberOrAName() throws {
        XCTAssertEqual(try Train.parse([]).allreduce, .measure)
        XCTAssertEqual(try Train.parse(["--allreduce-algorithm", "auto"]).allreduce, .measure)
        XCTAssertEqual(try Train.parse(["--allreduce-algorithm", "default"]).allreduce, .openMPIDefault)
        XCTAssertEqual(try Train.parse(["--allreduce-algorithm", "6"]).allreduce, .algorithm(6))
        XCTAssertEqual(try Train.parse(["--allreduce-algorithm", "recursive-doubling"]).allreduce, .algorithm(3))
        XCTAssertEqual(AllreduceRequest.algorithm(5).flagValue, "segmented-ring")
        XCTAssertEqual(try Train.parse(["--allreduce-algorithm", "shared-memory"]).allreduce, .algorithm(AllreduceTuning.sharedMemory))
        XCTAssertEqual(AllreduceRequest.algorithm(AllreduceTuning.sharedMemory).flagValue, "shared-memory")
        for bad in ["0", "7", "101", "tree", ""] {
            XCTAssertThrowsError(try Train.parse(["--allreduce-algorithm", bad])) { error in
                XCTAssertEqual(Train.message(for: error).split(separator: "\n").first.map(String.init),
                               "--allreduce-algorithm: unknown algorithm '\(bad)'; choose auto, default, 1-6 or one of basic-linear, nonoverlapping, recursive-doubling, ring, segmented-ring, rabenseifner, shared-memory")
            }
        }
    }

    func testTheStartUpLineListsEveryTimeAndTheChoice() {
        let timings = [890.4, 881, 398.2, 412.3, 413, 12_345.6].enumerated().map {
            AllreduceTiming(algorithm: $0.offset + 1, seconds: $0.element * 1e-6, iterations: 200)
        }
        let measured = AllreduceMeasurement(count: 235_146, ranks: 2, timings: timings, chosen: 3, seconds: 0.62)
        XCTAssertEqual(Console.describe(AllreduceRecord(algorithm: 3, source: .measured, measurement: measured)),
                       "allreduce: measured on 235,146 floats × 2 ranks: basic linear 890 µs, nonoverlapping 881 µs, recursive doubling 398 µs, ring 412 µs, segmented ring 413 µs, rabenseifner 12,346 µs → recursive doubling (0.6 s)")
        XCTAssertEqual(Console.describe(AllreduceRecord(algorithm: 4, source: .flag, detail: "--allreduce-algorithm ring")),
                       "allreduce: ring (--allreduce-algorithm ring), not measured")
        XCTAssertEqual(Console.describe(AllreduceRecord(algorithm: nil, source: .openMPI, detail: "NNTRAIN_ALLREDUCE=default")),
                       "allreduce: Open MPI's decision rules (NNTRAIN_ALLREDUCE=default), not measured")
        XCTAssertEqual(Console.describe(AllreduceRecord(algorithm: 6, source: .resumed, detail: "measured by the run being resumed")),
                       "allreduce: rabenseifner (measured by the run being resumed), not measured again")
        XCTAssertEqual(Console.grouped(0), "0")
        XCTAssertEqual(Console.grouped(999), "999")
        XCTAssertEqual(Console.grouped(1_000), "1,000")
        XCTAssertEqual(Console.grouped(5_800_000), "5,800,000")
    }

    func testAResumedRunFindsOnlyAMeasuredAlgorithm() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-allreduce-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func record(_ allreduce: String) throws {
            try Data("{\"world_size\": 4, \"allreduce\": \(allreduce)}".utf8).write(to: URL(fileURLWithPath: dir + "/run.json"))
        }
        XCTAssertNil(AllreduceRecord.measured(inRunDirectory: dir), "no run.json")
        try record("{\"algorithm\": 3, \"source\": \"measured\"}")
        XCTAssertEqual(AllreduceRecord.measured(inRunDirectory: dir)?.algorithm, 3)
        XCTAssertEqual(AllreduceRecord.measured(inRunDirectory: dir)?.worldSize, 4)
        try record("{\"algorithm\": 5, \"source\": \"resumed\"}")
        XCTAssertEqual(AllreduceRecord.measured(inRunDirectory: dir)?.algorithm, 5)
        try record("{\"algorithm\": 4, \"source\": \"flag\"}")
        XCTAssertNil(AllreduceRecord.measured(inRunDirectory: dir), "a forced algorithm is not reused")
        try record("{\"algorithm\": null, \"source\": \"open_mpi\"}")
        XCTAssertNil(AllreduceRecord.measured(inRunDirectory: dir))
        try record("null")
        XCTAssertNil(AllreduceRecord.measured(inRunDirectory: dir))
    }
}
