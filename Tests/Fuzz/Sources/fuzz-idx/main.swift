// IDX image and label files, raw or gzip-compressed, through IDXLoader.decode
// (what `load` runs on the files' bytes). An input is
//   [limit: 1 byte, 0 = none] [images length: 2 bytes, little-endian] [images] [labels];
// scripts/fuzz writes the seeds (two Fashion-MNIST images, raw and gzip).

import FuzzDriver
import NNData

let imagesPath = "fuzz/images-idx3-ubyte", labelsPath = "fuzz/labels-idx1-ubyte"

Fuzz.main { bytes in
    guard bytes.count >= 3 else { return }
    let limit = bytes[0] == 0 ? nil : Int(bytes[0]) - 1
    let split = min(Int(bytes[1]) | Int(bytes[2]) << 8, bytes.count - 3)
    let images = Array(bytes[3..<3 + split]), labels = Array(bytes[(3 + split)...])
    Fuzz.expectAcceptedOrRefused(paths: [imagesPath, labelsPath]) {
        let dataset = try IDXLoader.decode(images: images, imagesPath: imagesPath, labels: labels, labelsPath: labelsPath,
                                           limit: limit)
        if dataset.features.count != dataset.count * dataset.featureCount || dataset.labels.count != dataset.count {
            Fuzz.finding("a dataset of \(dataset.count) samples with \(dataset.features.count) feature values and \(dataset.labels.count) labels")
        }
    }
}
