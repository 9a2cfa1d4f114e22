// Inputs that once broke a loader (see Tests/Fuzz and scripts/fuzz), each
// now refused with one error line naming the file.

import NNCore
import NNData
import XCTest

final class FuzzRegressionTests: XCTestCase {
    /// No images of 4294967295×4294967295 pixels: the header passes the size
    /// check (zero images need no bytes), and rows × columns used to overflow Int.
    func testIDXImageSizePastIntIsRefused() {
        let images = idxImages(count: 0, rows: 0xFFFF_FFFF, columns: 0xFFFF_FFFF, pixels: [])
        let labels = idxLabels([])
        assertUserError(try IDXLoader.decode(images: images, imagesPath: "images.idx", labels: labels, labelsPath: "labels.idx"),
                        contains: ["images.idx", "4294967295×4294967295", "damaged"])
        // The same header gzip-compressed takes the same way.
        assertUserError(try IDXLoader.decode(images: gzip(images), imagesPath: "images.idx.gz", labels: labels,
                                             labelsPath: "labels.idx"),
                        contains: ["images.idx.gz", "4294967295×4294967295", "damaged"])
    }

    /// A quoted cell holding a line break, quoted back in the message, used
    /// to split the message over two lines.
    func testCSVMessageQuotingALineBreakStaysOneLine() {
        let csv = Array("a,label\n\"1\n2\",x\n".utf8)
        assertUserError(try CSVLoader.load(bytes: csv, path: "data.csv", label: "label", mode: .classes),
                        contains: ["data.csv:2", #"'1\n2' is not a number"#])
    }
}
