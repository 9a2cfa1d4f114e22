// CSV files through every CSVLoader entry the app uses, on the file's bytes.
// An input is [entry: 1 byte] [label column name] "\n" [CSV file]:
// entry % 5 picks training (class labels), regression (numeric labels), a
// test set with the training set's class names, prediction features without
// the label, and prediction with the model's columns.

import FuzzDriver
import NNData

let path = "fuzz/data.csv"
let knownClasses = ["setosa", "versicolor", "virginica", "0", "1"]
let modelColumns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

func check(_ dataset: Dataset) {
    if dataset.features.count != dataset.count * dataset.featureCount
        || dataset.labels.count != dataset.count * dataset.labelWidth {
        Fuzz.finding("a dataset of \(dataset.count) samples with \(dataset.features.count) feature values and \(dataset.labels.count) labels")
    }
    if dataset.features.contains(where: { !$0.isFinite }) { Fuzz.finding("a feature that is not finite") }
}

Fuzz.main(seeds: { directory in
    let root = Fuzz.repositoryRoot
    var made = 0
    for file in ["datasets/iris/train.csv", "datasets/wine/train.csv"] {
        guard let text = Fuzz.readFile(root + "/" + file) else { continue }
        let head = Array(text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).prefix(6)
            .joined(separator: [UInt8(ascii: "\n")]))
        let label = file.contains("iris") ? "species" : "cultivar"
        for entry in 0..<5 {
            try Fuzz.writeSeed([UInt8(entry)] + Array(label.utf8) + [UInt8(ascii: "\n")] + head + [UInt8(ascii: "\n")],
                               "\(file.split(separator: "/")[1])-\(entry)", in: directory)
            made += 1
        }
    }
    // What the reader accepts beyond plain rows: a byte order mark, quotes, CRLF, blank lines.
    let quirks = "\u{FEFF}\"a\",b , label\r\n\r\n \"1.5\" ,2,\"x, \"\"y\"\"\"\r\n3,4e1,x\n\n\"5\n\",6,z\n"
    for entry in 0..<5 {
        try Fuzz.writeSeed([UInt8(entry)] + Array("label\n".utf8) + Array(quirks.utf8), "quirks-\(entry)", in: directory)
    }
    if made == 0 { throw SeedError("no dataset CSV under \(root)/datasets") }
}) { bytes in
    guard let entry = bytes.first, let newline = bytes.dropFirst().firstIndex(of: UInt8(ascii: "\n")) else { return }
    let label = String(decoding: bytes[1..<newline], as: UTF8.self)
    let file = Array(bytes[(newline + 1)...])
    Fuzz.expectAcceptedOrRefused(paths: [path]) {
        switch entry % 5 {
        case 0: check(try CSVLoader.load(bytes: file, path: path, label: label, mode: .classes))
        case 1: check(try CSVLoader.load(bytes: file, path: path, label: label, mode: .values))
        case 2: check(try CSVLoader.load(bytes: file, path: path, label: label, mode: .classes, classNames: knownClasses))
        case 3: check(try CSVLoader.loadFeatures(bytes: file, path: path, excluding: [label]))
        default: check(try CSVLoader.loadFeatures(bytes: file, path: path, columns: modelColumns, ignoring: [label]))
        }
    }
}
