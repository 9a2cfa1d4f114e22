import NNCore
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
