// Model files and configs that once broke a reader (see Tests/Fuzz and
// scripts/fuzz), each now refused with one error line naming the file.

import Foundation
import NNCore
import NNData
import SafeTensors
import XCTest
@testable import NNTraining

final class FuzzRegressionTests: XCTestCase {
    let path = "runs/x/model.safetensors"

    /// The xor preset's model (2 inputs, dense 4 tanh, dense 1 sigmoid) as a file.
    func xorModel() throws -> SafeTensorsFile {
        let config = try Presets.config("xor")
        let count = Sequential.layout(inputSize: 2, layers: config.layerSpecs).reduce(0) { $0 + $1.count }
        let snapshot = ModelSnapshot(config: config, inputSize: 2,
                                     scaler: FeatureScaler(method: .standardize, offsets: [0, 0], factors: [1, 1]),
                                     classNames: nil, parameters: (0..<count).map { Float($0) / 10 })
        return ModelFile.encode(snapshot)
    }

    /// `file` with the stored config's text edited by `edit`, as bytes.
    func bytes(_ file: SafeTensorsFile, config edit: (String) -> String) -> [UInt8] {
        var file = file
        file.metadata["config"] = edit(file.metadata["config"]!)
        return file.encoded()
    }

    func assertRefused(_ bytes: [UInt8], _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelFile.decode(bytes: bytes, path: path), file: file, line: line) { error in
            guard let error = error as? UserError else { return XCTFail("not a UserError: \(error)", file: file, line: line) }
            XCTAssertTrue(error.message.hasPrefix(path + ": "), error.message, file: file, line: line)
            for part in parts where !error.message.contains(part) {
                XCTFail("'\(part)' missing from: \(error.message)", file: file, line: line)
            }
        }
        // `inspect` takes the same checks.
        XCTAssertThrowsError(try ModelSummary(try SafeTensors.decode(bytes, path: path), path: path), file: file, line: line)
    }

    func testTheUneditedModelReadsBack() throws {
        let snapshot = try ModelFile.decode(bytes: bytes(try xorModel()) { $0 }, path: path)
        XCTAssertEqual(snapshot.parameters.count, 17)
    }

    /// Units past what Int can multiply: sizing the layout used to trap on overflow.
    func testStoredUnitsPastIntAreRefused() throws {
        let huge = bytes(try xorModel()) { $0.replacingOccurrences(of: #""units":4"#, with: #""units":4611686018427387904"#) }
        assertRefused(huge, ["more parameters than the file holds"])
    }

    /// Units that multiply but far exceed the file: the parameter array used
    /// to be reserved at that size (here 400 GB) before any tensor was checked.
    func testStoredUnitsPastTheFileAreRefusedBeforeAllocating() throws {
        let large = bytes(try xorModel()) { $0.replacingOccurrences(of: #""units":4"#, with: #""units":100000000000"#) }
        assertRefused(large, ["more parameters than the file holds (17 values)"])
    }

    func testStoredZeroUnitsAndDropoutOutsideTheRangeAreRefused() throws {
        assertRefused(bytes(try xorModel()) { $0.replacingOccurrences(of: #""units":4"#, with: #""units":0"#) },
                      ["layer 0 has 0 units"])
        let dropout = bytes(try xorModel()) {
            $0.replacingOccurrences(of: #"{"activation":"sigmoid""#, with: #"{"kind":"dropout","rate":7},{"activation":"sigmoid""#)
        }
        assertRefused(dropout, ["layer 1 drops a fraction 7.0"])
    }

    /// A loss that does not fit the output layer: `predict` used to refuse it
    /// with a message that did not name the file.
    func testAStoredLossThatDoesNotFitTheOutputNamesTheFile() throws {
        let mismatched = bytes(try xorModel()) {
            $0.replacingOccurrences(of: #""loss":"binary_crossentropy""#, with: #""loss":"sparse_categorical_crossentropy""#)
        }
        assertRefused(mismatched, ["the stored config does not hold together", "softmax"])
    }

    /// Ten thousand `[`: Yams' composer recursed once per level and
    /// overflowed the stack (`nntrain train --config` died with SIGSEGV).
    func testDeepFlowNestingIsRefusedBeforeYams() {
        let text = String(repeating: "[", count: 10_000) + "\n"
        XCTAssertThrowsError(try ConfigReader.parse(text, file: "deep.yaml")) { error in
            XCTAssertEqual((error as? UserError)?.message,
                           "deep.yaml:1: the YAML nests more than 64 brackets deep; a config needs a few levels, check the file")
        }
        // Block levels the same way: each line indented one column more.
        let block = (0..<3000).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
        XCTAssertThrowsError(try ConfigReader.parse(block, file: "deep.yaml")) { error in
            XCTAssertTrue((error as? UserError)?.message.hasPrefix("deep.yaml:130: the YAML is indented or nested more than 128") == true,
                          "\(error)")
        }
        let dashes = String(repeating: "- ", count: 5000) + "x\n"
        XCTAssertThrowsError(try ConfigReader.parse(dashes, file: "deep.yaml")) { error in
            XCTAssertTrue((error as? UserError)?.message.hasPrefix("deep.yaml:1: the YAML is indented") == true, "\(error)")
        }
        // Nesting a real config uses is untouched.
        XCTAssertNoThrow(try ConfigReader.checkNesting(Presets.yaml("fashion-mnist")!, file: "preset"))
    }

    /// A scaler of another width than the model's inputs: prediction used to
    /// stop on the scaler's precondition.
    func testAScalerOfAnotherWidthIsRefused() throws {
        var file = try xorModel()
        file.metadata["scaler"] = #"{"factors":[1,1,1],"method":"standardize","offsets":[0,0,0]}"#
        assertRefused(file.encoded(), ["metadata 'scaler' holds 3 offsets and 3 factors for a model of 2 inputs"])
    }
}
