// Files a run appends to: a failed write is an error value for the observer
// to report, never a crash of the training process.

import Foundation
import XCTest
import NNCore
@testable import NNTraining

final class RunFilesTests: XCTestCase {
    func testAppendingToAFullDeviceThrowsAUserError() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full on this system") }
        XCTAssertThrowsError(try JSONLinesFile(path: "/dev/full").append("{\"epoch\": 1}\n")) { error in
            let message = (error as? UserError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("/dev/full: cannot write"), message)
        }
    }

    func testKeepingEpochsDropsLaterAndDamagedLines() throws {
        let path = NSTemporaryDirectory() + "/lines-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = JSONLinesFile(path: path)
        for line in [#"{"epoch": 1}"#, #"{"epoch": 2}"#, "garbage", #"{"epoch": 3}"#] { try file.append(line + "\n") }
        try file.keepEpochs(through: 2)
        XCTAssertEqual(file.lines(), [#"{"epoch": 1}"#, #"{"epoch": 2}"#])
    }
}
