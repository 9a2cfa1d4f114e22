// YAML run configurations through ConfigReader.parse, as `read(path:)` runs
// it on the file's text (decoded as UTF-8 the same way).

import FuzzDriver
import Foundation
import NNTraining

let path = "fuzz/config.yaml"

Fuzz.main(seeds: { directory in
    let root = Fuzz.repositoryRoot
    var files = ["datasets/iris/iris.yaml", "datasets/wine/wine.yaml"]
    let tour = (try? FileManager.default.contentsOfDirectory(atPath: root + "/docs/tour")) ?? []
    files += tour.filter { $0.hasSuffix(".yaml") }.sorted().map { "docs/tour/" + $0 }
    var made = 0
    for file in files {
        guard let text = Fuzz.readFile(root + "/" + file) else { continue }
        try Fuzz.writeSeed(text, file.replacingOccurrences(of: "/", with: "-"), in: directory)
        made += 1
    }
    for name in Presets.names {
        if let text = Presets.yaml(name) { try Fuzz.writeSeed(Array(text.utf8), "preset-\(name).yaml", in: directory) }
    }
    if made == 0 { throw SeedError("no YAML configs under \(root)") }
}) { bytes in
    Fuzz.expectAcceptedOrRefused(paths: [path]) {
        _ = try ConfigReader.parse(String(decoding: bytes, as: UTF8.self), file: path, baseDirectory: "/fuzz")
    }
}
