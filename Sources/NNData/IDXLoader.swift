// The IDX format of MNIST and Fashion-MNIST: a big-endian magic (two zero
// bytes, a type code, the number of dimensions), one big-endian UInt32 per
// dimension, then the values. Only unsigned bytes (type 0x08) are read:
// 3-D images (0x00000803) and 1-D labels (0x00000801).

import NNCore

/// Loads an IDX image/label pair, raw or gzip-compressed.
public enum IDXLoader {
    /// The magic of a 3-D unsigned-byte IDX file (images).
    static let imageMagic: UInt32 = 0x0000_0803
    /// The magic of a 1-D unsigned-byte IDX file (labels).
    static let labelMagic: UInt32 = 0x0000_0801

    /// Loads images and labels into a dataset: features are the raw pixel
    /// values 0…255 as Float (scaling happens elsewhere), `featureCount` is
    /// rows × columns, labels are the class indices.
    /// - Parameter limit: keep only the first `limit` samples.
    /// - Throws: `UserError` naming the file for a missing or unreadable file,
    ///   a corrupt gzip stream, a wrong magic, a truncated file, or image and
    ///   label counts that differ.
    public static func load(images imagesPath: String, labels labelsPath: String, limit: Int? = nil) throws -> Dataset {
        let imageBytes = try FileBytes.read(imagesPath, role: "IDX images file")
        let labelBytes = try FileBytes.read(labelsPath, role: "IDX labels file")
        return try decode(images: imageBytes, imagesPath: imagesPath, labels: labelBytes, labelsPath: labelsPath, limit: limit)
    }

    /// Like `load`, from the two files' contents as read (raw or gzip-compressed);
    /// the paths are only used in messages and in the dataset's origin.
    public static func decode(images compressedImages: [UInt8], imagesPath: String, labels compressedLabels: [UInt8],
                              labelsPath: String, limit: Int? = nil) throws -> Dataset {
        let imageBytes = try FileBytes.maybeGunzip(compressedImages, path: imagesPath, role: "IDX images file")
        let image = try header(imageBytes, path: imagesPath, expected: imageMagic)
        let labelBytes = try FileBytes.maybeGunzip(compressedLabels, path: labelsPath, role: "IDX labels file")
        let label = try header(labelBytes, path: labelsPath, expected: labelMagic)

        let imageCount = image.dimensions[0], rows = image.dimensions[1], columns = image.dimensions[2]
        let labelCount = label.dimensions[0]
        guard imageCount == labelCount else {
            throw UserError("\(imagesPath): holds \(imageCount) images but \(labelsPath) holds \(labelCount) labels; give the labels file that belongs to these images")
        }
        // With no images the header's size checks nothing; a product past Int is a damaged header.
        let (pixels, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow else {
            throw UserError("\(imagesPath): the IDX header gives images of \(rows)×\(columns) pixels, too many to exist; the file is damaged, download or copy it again")
        }
        let n = min(imageCount, max(limit ?? imageCount, 0))

        // One tight conversion loop from the decoded bytes: no per-sample appends.
        var features = [Float](repeating: 0, count: n * pixels)
        imageBytes.withUnsafeBufferPointer { source in
            features.withUnsafeMutableBufferPointer { destination in
                let base = source.baseAddress! + image.dataOffset
                for k in 0..<destination.count { destination[k] = Float(base[k]) }
            }
        }
        var labels = [Float](repeating: 0, count: n)
        labelBytes.withUnsafeBufferPointer { source in
            labels.withUnsafeMutableBufferPointer { destination in
                let base = source.baseAddress! + label.dataOffset
                for k in 0..<destination.count { destination[k] = Float(base[k]) }
            }
        }
        return Dataset(name: imagesPath, features: features, featureCount: pixels, labels: labels, labelWidth: 1,
                       classNames: nil, origin: .idx(labelsPath: labelsPath))
    }

    // MARK: - Header

    /// A parsed IDX header.
    struct Header {
        /// The dimension sizes, outermost (the item count) first.
        var dimensions: [Int]
        /// Where the values start.
        var dataOffset: Int
    }

    /// Parses and checks the header of a decoded IDX file, and that the file
    /// holds all the values the header promises.
    static func header(_ bytes: [UInt8], path: String, expected: UInt32) throws -> Header {
        let kind = expected == imageMagic ? "image" : "label"
        func bigEndian(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
        }
        guard bytes.count >= 4 else {
            throw UserError("\(path): not an IDX \(kind) file (only \(bytes.count) bytes, too short for the 4-byte magic); check the path")
        }
        let magic = bigEndian(0)
        guard magic == expected else {
            let swapped = magic == (expected == imageMagic ? labelMagic : imageMagic)
            let advice = swapped ? "did you swap images and labels?" : "give the \(kind)s file (e.g. train-\(kind)s-idx\(expected & 0xFF)-ubyte.gz)"
            throw UserError("\(path): not an IDX \(kind) file (magic \(hex(magic)), expected \(hex(expected))); \(advice)")
        }
        let rank = Int(expected & 0xFF)
        let dataOffset = 4 + 4 * rank
        guard bytes.count >= dataOffset else {
            throw UserError("\(path): truncated: the IDX header needs \(dataOffset) bytes but the file holds \(bytes.count); download or copy the file again")
        }
        let dimensions = (0..<rank).map { Int(bigEndian(4 + 4 * $0)) }
        // A corrupt header can promise more than Int holds; saturate so it reads as truncated.
        let valueCount = dimensions.reduce(1) { product, size in
            let (result, overflow) = product.multipliedReportingOverflow(by: size)
            return overflow ? Int.max : result
        }
        guard bytes.count - dataOffset >= valueCount else {
            let shape = dimensions.dropFirst().map(String.init).joined(separator: "×")
            let promise = rank == 1 ? "\(dimensions[0]) labels" : "\(dimensions[0]) images of \(shape)"
            throw UserError("\(path): truncated: the header promises \(promise) (\(valueCount) bytes) but the file holds \(bytes.count - dataOffset); download or copy the file again")
        }
        return Header(dimensions: dimensions, dataOffset: dataOffset)
    }

    /// `0x00000803`-style hex for a magic number.
    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}
