// docs/tour.md, run: every command of every ```console block, in order, in
// one scratch directory holding docs/tour/*.yaml, with nntrain from this
// build first on PATH; each must exit 0 and print what the page shows, in
// shape (TourMatcher; the rules are at the top of docs/tour.md).

import Foundation
import XCTest

final class TourTests: XCTestCase {
    func testTheTourPrintsWhatItShows() throws {
        let document = try String(contentsOfFile: packageRoot + "/docs/tour.md", encoding: .utf8)
        let blocks = try TourDocument.parse(document)
        XCTAssertGreaterThan(blocks.count, 10, "docs/tour.md has its command blocks")

        let scratch = temporaryDirectory(self)
        let configs = packageRoot + "/docs/tour"
        try FileManager.default.createDirectory(atPath: scratch + "/docs/tour", withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: configs) where name.hasSuffix(".yaml") {
            try FileManager.default.copyItem(atPath: configs + "/" + name, toPath: scratch + "/docs/tour/" + name)
        }
        let binaries = URL(fileURLWithPath: nntrainBinary).deletingLastPathComponent().path
        let path = binaries + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")

        let start = Date()
        for block in blocks {
            for command in block.commands {
                let began = Date()
                let outcome = try runProcess("/bin/bash", ["-c", "exec 2>&1\n" + command.command], in: scratch,
                                             environment: ["PATH": path, "COLUMNS": "80"], timeout: 300)
                var lines = outcome.stdout.components(separatedBy: "\n")
                if lines.last == "" { lines.removeLast() }
                let place = "docs/tour.md:\(command.line): $ \(command.command)"
                print(String(format: "tour: %5.1f s  %@", Date().timeIntervalSince(began), command.command))
                XCTAssertEqual(outcome.status, 0, "\(place) exited \(outcome.status):\n\(outcome.stdout)")
                if let why = TourMatcher.mismatch(expected: command.expected, actual: lines, options: block.options) {
                    XCTFail("\(place): \(why)\nthe whole output:\n\(outcome.stdout)")
                }
            }
        }
        print(String(format: "tour: %.1f s in all", Date().timeIntervalSince(start)))
    }
}
