// The datasets/ folder: the README's example config runs as written, every
// dataset datasets/README.md lists is there as it says, and every config in
// the folder trains.

import Foundation
import XCTest
import NNData
import NNTraining

final class DatasetsTests: XCTestCase {
    let datasets = packageRoot + "/datasets"

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// The lines of README.md's "### Configuration" section.
    func configurationSection() throws -> [Substring] {
        let lines = try read(packageRoot + "/README.md").split(separator: "\n", omittingEmptySubsequences: false)
        let start = try XCTUnwrap(lines.firstIndex { $0 == "### Configuration" }, "README.md has no '### Configuration' heading")
        // Up to the next heading; a `#` inside a fenced block is a comment.
        var end = start + 1, fenced = false
        while end < lines.count && (fenced || !lines[end].hasPrefix("#")) {
            if lines[end].hasPrefix("```") { fenced.toggle() }
            end += 1
        }
        return Array(lines[start..<end])
    }

    /// The fenced blocks of `lines`, with their info strings (`yaml`, or empty).
    func fencedBlocks(_ lines: [Substring]) -> [(info: String, body: String)] {
        var blocks: [(String, String)] = []
        var open: (info: String, lines: [Substring])?
        for line in lines {
            if line.hasPrefix("```") {
                if let block = open {
                    blocks.append((block.info, block.lines.map { $0 + "\n" }.joined()))
                    open = nil
                } else {
                    open = (String(line.dropFirst(3)), [])
                }
            } else if open != nil {
                open!.lines.append(line)
            }
        }
        return blocks
    }

    /// The rows of the Markdown tables in `text` that satisfy `keep`, split
    /// into trimmed cells with backticks removed.
    func tableRows(_ text: String, where keep: ([String]) -> Bool) -> [[String]] {
        text.split(separator: "\n").compactMap { line -> [String]? in
            guard line.hasPrefix("|") && line.hasSuffix("|") else { return nil }
            let cells = line.dropFirst().dropLast().split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "") }
            return keep(cells) ? cells : nil
        }
    }

    /// The number after `name: ` in a line like `test - loss: 0.1 - accuracy: 0.9`.
    func metric(_ name: String, in line: Substring) -> Double? {
        line.components(separatedBy: " - ").lazy.compactMap { part -> Double? in
            part.hasPrefix(name + ": ") ? Double(part.dropFirst(name.count + 2)) : nil
        }.first
    }

    // MARK: - (a) The README's example

    func testReadmeExampleIsTheIrisConfigAndReachesNinetyPercentAsWritten() throws {
        let section = try configurationSection()
        let yaml = try XCTUnwrap(fencedBlocks(section).first { $0.info == "yaml" }, "no yaml block under Configuration")
        XCTAssertEqual(yaml.body, try read(datasets + "/iris/iris.yaml"),
                       "README.md's example config is not datasets/iris/iris.yaml")

        let commands = fencedBlocks(section).filter { $0.info.isEmpty }.flatMap { $0.body.split(separator: "\n") }
        let command = try XCTUnwrap(commands.first { $0.hasPrefix("nntrain train --config ") },
                                    "no 'nntrain train --config …' command under Configuration")
        let arguments = command.split(separator: " ").dropFirst().map(String.init)
        XCTAssertEqual(arguments, ["train", "--config", "datasets/iris/iris.yaml"])

        let run = temporaryDirectory(self) + "/iris"
        let outcome = try nntrain(arguments + ["--run-dir", run], in: packageRoot, timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let testLine = try XCTUnwrap(outcome.stdout.split(separator: "\n").last { $0.hasPrefix("test - ") },
                                     "no test line in: \(outcome.stdout)")
        let accuracy = try XCTUnwrap(metric("accuracy", in: testLine), String(testLine))
        XCTAssertGreaterThanOrEqual(accuracy, 0.9, String(testLine))
        let epochs = try ConfigReader.read(path: datasets + "/iris/iris.yaml").training.epochs
        XCTAssertEqual(metricsLines(run).count, epochs)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/model.safetensors"))
    }

    // MARK: - (b) Every dataset the README lists

    /// `datasets/README.md`'s table of bundled files: path, rows, features, label, classes.
    func bundledFiles() throws -> [(path: String, rows: Int, features: Int, label: String, classes: Int)] {
        try tableRows(read(datasets + "/README.md")) { $0[0].hasSuffix(".csv") }.map { cells in
            XCTAssertEqual(cells.count, 5, "\(cells)")
            let numbers = cells.dropFirst().map { Int($0.replacingOccurrences(of: ",", with: "")) }
            return (cells[0], try XCTUnwrap(numbers[0], "\(cells)"), try XCTUnwrap(numbers[1], "\(cells)"), cells[3],
                    try XCTUnwrap(numbers[3], "\(cells)"))
        }
    }

    /// A CSV file's header fields and data lines (blank lines dropped).
    func csv(_ path: String) throws -> (header: [Substring], rows: [Substring]) {
        let lines = try read(path).split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
        let header = try XCTUnwrap(lines.first, "\(path) is empty")
        return (header.split(separator: ",", omittingEmptySubsequences: false), Array(lines.dropFirst()))
    }

    func testBundledCSVFilesHaveTheRowsColumnsAndClassesTheReadmeGives() throws {
        let files = try bundledFiles()
        XCTAssertGreaterThanOrEqual(files.count, 3, "the README's table of bundled files")
        for file in files {
            let (header, rows) = try csv(datasets + "/" + file.path)
            XCTAssertEqual(rows.count, file.rows, "\(file.path): data rows")
            XCTAssertEqual(header.count, file.features + 1, "\(file.path): columns \(header)")
            let column = try XCTUnwrap(header.firstIndex { $0 == file.label }, "\(file.path): no column '\(file.label)'")
            var classes = Set<Substring>()
            for row in rows {
                let fields = row.split(separator: ",", omittingEmptySubsequences: false)
                XCTAssertEqual(fields.count, header.count, "\(file.path): \(row)")
                if fields.count == header.count { classes.insert(fields[column]) }
            }
            XCTAssertEqual(classes.count, file.classes, "\(file.path): classes \(classes.sorted())")
        }

        // Every CSV file in the folder is in the table.
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: datasets))
        let present = Set(enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".csv") })
        XCTAssertEqual(present, Set(files.map(\.path)), "CSV files under datasets/ against the README's table")

        // Each split is its whole file, row for row.
        for whole in files.map(\.path) where !whole.hasSuffix("/train.csv") && !whole.hasSuffix("/test.csv") {
            let directory = (whole as NSString).deletingLastPathComponent
            let full = try csv(datasets + "/" + whole)
            let train = try csv(datasets + "/" + directory + "/train.csv"), test = try csv(datasets + "/" + directory + "/test.csv")
            XCTAssertEqual(train.header, full.header, directory)
            XCTAssertEqual(test.header, full.header, directory)
            XCTAssertEqual((train.rows + test.rows).sorted(), full.rows.sorted(), "\(directory): train + test against \(whole)")
        }
    }

    /// The bundled Iris is Fisher's: 50 flowers per species, his column means.
    func testIrisIsFishersData() throws {
        let (header, rows) = try csv(datasets + "/iris/iris.csv")
        XCTAssertEqual(header, ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        var sums = [Double](repeating: 0, count: 4)
        var perSpecies: [Substring: Int] = [:]
        for row in rows {
            let fields = row.split(separator: ",")
            for k in 0..<4 { sums[k] += try XCTUnwrap(Double(fields[k]), String(row)) }
            perSpecies[fields[4], default: 0] += 1
        }
        XCTAssertEqual(perSpecies, ["setosa": 50, "versicolor": 50, "virginica": 50])
        for (k, expected) in [876.5, 458.6, 563.7, 179.9].enumerated() {
            XCTAssertEqual(sums[k], expected, accuracy: 1e-9, "sum of \(header[k])")
        }
        XCTAssertEqual(sums[0] / 150, 5.8433, accuracy: 5e-5)
    }

    func testFashionMNISTFilesMatchTheReadme() throws {
        let readme = try read(datasets + "/README.md")
        let directory = Presets.fashionMNISTDirectory
        let check = try XCTUnwrap(fencedBlocks(readme.split(separator: "\n", omittingEmptySubsequences: false))
            .first { $0.body.contains("sha256sum -c") }, "no sha256sum -c block in datasets/README.md")
        XCTAssertTrue(check.body.hasPrefix("cd \(directory) && "), check.body)
        let sums = check.body.split(separator: "\n").filter { line in
            line.count > 66 && line.prefix(64).allSatisfy(\.isHexDigit) && line.dropFirst(64).hasPrefix("  ")
        }
        let names = sums.map { String($0.dropFirst(66)) }
        let sizes = tableRows(readme) { $0[0].hasSuffix("-ubyte.gz") }
        XCTAssertEqual(Set(names), Set(sizes.map { $0[0] }), "checksummed files against the table")
        XCTAssertEqual(names.count, 4, "\(names)")
        let preset = try XCTUnwrap(Presets.yaml("fashion-mnist"))
        for name in names { XCTAssertTrue(preset.contains(directory + "/" + name), "the preset does not read \(name)") }

        guard names.allSatisfy({ FileManager.default.fileExists(atPath: directory + "/" + $0) }) else {
            throw XCTSkip("Fashion-MNIST is not installed in \(directory) (apt-get install dataset-fashion-mnist, or scripts/install-deps)")
        }
        for row in sizes {
            let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + row[0])
            XCTAssertEqual((attributes[.size] as? NSNumber)?.intValue, Int(row[2].replacingOccurrences(of: ",", with: "")),
                           "size of \(row[0])")
        }
        // The README's own command, as written.
        let outcome = try runProcess("/bin/bash", ["-c", check.body], timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.stdout + outcome.stderr)
        for name in names { XCTAssertTrue(outcome.stdout.contains("\(name): OK"), outcome.stdout) }
    }

    func testSyntheticSetsAreTheOnesTheReadmeDescribes() throws {
        // Rows like `| `xor` | … | 2 | 2 | 500 |`: a lower-case name first, a number last.
        let rows = try tableRows(read(datasets + "/README.md")) { cells in
            cells[0].range(of: "^[a-z_]+$", options: .regularExpression) != nil && Int(cells[cells.count - 1]) != nil
        }
        XCTAssertEqual(rows.map { $0[0] }.sorted(), SyntheticData.names.sorted(), "synthetic sets in datasets/README.md")
        for row in rows {
            XCTAssertEqual(row.count, 5, "\(row)")
            guard row.count == 5, let features = Int(row[2]), let classes = Int(row[3]), let samples = Int(row[4]) else {
                XCTFail("\(row)"); continue
            }
            let config = try ConfigReader.parse("""
                data: {train: {format: synthetic, name: \(row[0])}}
                model: {layers: [{dense: {units: 1, activation: sigmoid}}]}
                loss: binary_crossentropy
                """, file: "synthetic \(row[0])")
            guard case .synthetic(_, let defaultSamples, let noise, let seed, _) = config.data.train else {
                XCTFail("\(row[0]): not read as a synthetic source"); continue
            }
            XCTAssertEqual(defaultSamples, samples, "\(row[0]): default samples")
            let set = try SyntheticData.make(name: row[0], samples: defaultSamples, noise: noise, seed: seed)
            XCTAssertEqual(set.count, samples, row[0])
            XCTAssertEqual(set.featureCount, features, row[0])
            XCTAssertEqual(Set(set.labels).count, classes, row[0])
        }
    }

    // MARK: - (c) Every config in the folder

    func testEveryConfigUnderDatasetsTrainsOneEpoch() throws {
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: datasets))
        let configs = enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        XCTAssertFalse(configs.isEmpty, "no configs under datasets/")
        let dir = temporaryDirectory(self)
        for (k, name) in configs.enumerated() {
            let path = datasets + "/" + name
            let config = try ConfigReader.read(path: path)
            let run = dir + "/run-\(k)"
            // From another directory: data paths must resolve against the config's.
            let outcome = try nntrain(["train", "--config", path, "--epochs", "1", "--run-dir", run], in: dir, timeout: 120)
            XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.stderr)")
            XCTAssertTrue(outcome.stdout.contains("Epoch 1/1"), "\(name): \(outcome.stdout)")
            XCTAssertEqual(metricsLines(run).count, 1, name)
            if config.data.test != nil {
                XCTAssertTrue(outcome.stdout.split(separator: "\n").contains { $0.hasPrefix("test - ") }, "\(name): \(outcome.stdout)")
            }
        }
    }
}
