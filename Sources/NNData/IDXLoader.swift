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
    /// the paths are only used in messages and in the dataset's origin. Gzip
    /// contents are inflated only as far as their header allows.
    public static func decode(images compressedImages: [UInt8], imagesPath: String, labels compressedLabels: [UInt8],
                              labelsPath: String, limit: Int? = nil) throws -> Dataset {
        let imageBytes = try FileBytes.maybeGunzip(compressedImages, path: imagesPath, role: "IDX images file",
                                                   bound: bound(path: imagesPath, expected: imageMagic))
        let image = try header(imageBytes, path: imagesPath, expected: imageMagic)
        let labelBytes = try FileBytes.maybeGunzip(compressedLabels, path: labelsPath, role: "IDX labels file",
                                                   bound: bound(path: labelsPath, expected: labelMagic))
        let label = try header(labelBytes, path: labelsPath, expected: labelMagic)

        let pixels = try checkPair(image, imagesPath: imagesPath, label, labelsPath: labelsPath)
        let imageCount = image.dimensions[0]
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

        /// The number of values (one byte each) the dimensions promise; a
        /// corrupt header can promise more than Int holds: then Int.max.
        var valueCount: Int {
            dimensions.reduce(1) { product, size in
                let (result, overflow) = product.multipliedReportingOverflow(by: size)
                return overflow ? Int.max : result
            }
        }
    }

    /// Checks that an image header and a label header belong together (as
    /// many labels as images, images of a trainable size); returns the pixels per image.
    static func checkPair(_ image: Header, imagesPath: String, _ label: Header, labelsPath: String) throws -> Int {
        let imageCount = image.dimensions[0], rows = image.dimensions[1], columns = image.dimensions[2]
        guard imageCount == label.dimensions[0] else {
            throw UserError("\(imagesPath): holds \(imageCount) images but \(labelsPath) holds \(label.dimensions[0]) labels; give the labels file that belongs to these images")
        }
        // With no images the header's size checks nothing; a product past Int is a damaged header.
        let (pixels, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, pixels > 0 else {
            throw UserError("\(imagesPath): the IDX header promises images of \(rows)×\(columns) pixels, which cannot be trained on; the file is damaged, download or copy it again")
        }
        return pixels
    }

    /// Parses and checks the header of a decoded IDX file, and that the file
    /// holds all the values the header promises.
    static func header(_ bytes: [UInt8], path: String, expected: UInt32) throws -> Header {
        let header = try parseHeader(bytes, path: path, expected: expected)
        let valueCount = header.valueCount
        guard bytes.count - header.dataOffset >= valueCount else {
            throw UserError("\(path): truncated: the header promises \(promise(header)) (\(valueCount) bytes) but the file holds \(bytes.count - header.dataOffset); download or copy the file again")
        }
        return header
    }

    /// Parses the magic and dimensions from the first bytes of an IDX file
    /// (at least the header; the values need not be there).
    static func parseHeader(_ bytes: [UInt8], path: String, expected: UInt32) throws -> Header {
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
        let dataOffset = headerLength(expected)
        guard bytes.count >= dataOffset else {
            throw UserError("\(path): truncated: the IDX header needs \(dataOffset) bytes but the file holds \(bytes.count); download or copy the file again")
        }
        let rank = Int(expected & 0xFF)
        return Header(dimensions: (0..<rank).map { Int(bigEndian(4 + 4 * $0)) }, dataOffset: dataOffset)
    }

    /// The header's size for a magic: the magic and one UInt32 per dimension.
    static func headerLength(_ magic: UInt32) -> Int { 4 + 4 * Int(magic & 0xFF) }

    /// What the header promises, in words: `10 labels`, `60000 images of 28×28`.
    static func promise(_ header: Header) -> String {
        let shape = header.dimensions.dropFirst().map(String.init).joined(separator: "×")
        return header.dimensions.count == 1 ? "\(header.dimensions[0]) labels" : "\(header.dimensions[0]) images of \(shape)"
    }

    /// Decompression stops once the output passes the header plus the values it promises.
    static func bound(path: String, expected: UInt32) -> FileBytes.OutputBound {
        var promised = ""
        return FileBytes.OutputBound(
            headerLength: headerLength(expected),
            maximum: { head in
                let header = try parseHeader(head, path: path, expected: expected)
                promised = promise(header)
                let (total, overflow) = header.dataOffset.addingReportingOverflow(header.valueCount)
                return overflow ? Int.max : total
            },
            tooLong: { maximum in tooLong(maximum: maximum, promised: promised) })
    }

    /// The message for a file that decompresses past what its header promises.
    static func tooLong(maximum: Int, promised: String) -> String {
        "decompresses to more than the \(maximum) bytes its IDX header allows (\(promised)); the file is damaged or not an IDX file; download or copy it again"
    }

    // MARK: - Shape without loading

    /// The samples and features a pair of IDX files will hold, read from the
    /// images file's header alone (its first bytes, decompressed when it is
    /// gzip), so their size can be checked before anything is loaded. Nil
    /// when the header cannot be read or a raw file is shorter than it
    /// promises: loading reports those.
    public static func shape(images imagesPath: String, limit: Int? = nil) -> (count: Int, featureCount: Int)? {
        guard let head = try? FileBytes.head(imagesPath, count: headerLength(imageMagic), role: "IDX images file"),
              let header = try? parseHeader(head.bytes, path: imagesPath, expected: imageMagic) else { return nil }
        if !head.compressed, let size = FileBytes.size(imagesPath),
           size - header.dataOffset < header.valueCount { return nil }
        let (pixels, overflow) = header.dimensions[1].multipliedReportingOverflow(by: header.dimensions[2])
        let count = min(header.dimensions[0], max(limit ?? Int.max, 0))
        return (count, overflow ? Int.max : pixels)
    }

    /// `0x00000803`-style hex for a magic number.
    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}

extension IDXLoader {
    /// An IDX pair read image by image: the labels are decoded at once (one
    /// byte a sample), the images streamed from the file in chunks of rows,
    /// so a file larger than memory can be converted without holding it.
    /// It reads what `load` reads and refuses what `load` refuses, with the
    /// same messages.
    public final class Stream {
        /// The samples it delivers (after `limit`).
        public let count: Int
        /// Pixels per image.
        public let featureCount: Int
        /// The labels, with the description a loaded dataset has (its name,
        /// class indices, origin) and no feature rows.
        public let labelsOnly: Dataset
        private let images: ByteStream
        private let header: Header
        private var delivered = 0
        private var bytes: [UInt8] = []

        /// Opens the pair; throws a `UserError` as `load` does.
        public init(images imagesPath: String, labels labelsPath: String, limit: Int? = nil) throws {
            let images = try ByteStream(path: imagesPath, role: "IDX images file")
            var head = [UInt8](repeating: 0, count: headerLength(imageMagic))
            head.removeSubrange(try head.withUnsafeMutableBytes { try images.read(into: $0) }...)
            let header = try parseHeader(head, path: imagesPath, expected: imageMagic)
            // A raw file shorter than its header promises is refused before
            // anything is converted (a gzip file's length shows only as it inflates).
            if !images.compressed, let size = images.fileSize, size - header.dataOffset < header.valueCount {
                throw UserError("\(imagesPath): truncated: the header promises \(promise(header)) (\(header.valueCount) bytes) but the file holds \(size - header.dataOffset); download or copy the file again")
            }
            (self.images, self.header) = (images, header)
            let labelBytes = try FileBytes.readMaybeGzip(labelsPath, role: "IDX labels file",
                                                         bound: bound(path: labelsPath, expected: labelMagic))
            let label = try IDXLoader.header(labelBytes, path: labelsPath, expected: labelMagic)
            let pixels = try checkPair(header, imagesPath: imagesPath, label, labelsPath: labelsPath)
            let imageCount = header.dimensions[0]
            count = min(imageCount, max(limit ?? imageCount, 0))
            featureCount = pixels
            let labels = labelBytes[label.dataOffset..<label.dataOffset + count].map(Float.init)
            labelsOnly = Dataset(name: imagesPath, features: [], featureCount: 0, labels: labels, labelWidth: 1,
                                 classNames: nil, origin: .idx(labelsPath: labelsPath))
        }

        /// Converts the next `rows.count / featureCount` images into `rows`
        /// (pixel values 0…255 as Float). After the last image delivered, the
        /// rest of the file is read to check that it holds what its header
        /// promises, as `load` checks.
        public func read(into rows: UnsafeMutableBufferPointer<Float>) throws {
            let n = rows.count / featureCount
            precondition(n * featureCount == rows.count && delivered + n <= count, "reading past the images asked for")
            if bytes.count < rows.count { bytes = [UInt8](repeating: 0, count: rows.count) }
            let got = try bytes.withUnsafeMutableBytes { try images.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<rows.count])) }
            if got < rows.count { throw truncated(holding: delivered * featureCount + got) }
            bytes.withUnsafeBufferPointer { source in
                for k in 0..<rows.count { rows[k] = Float(source[k]) }
            }
            delivered += n
            if delivered == count { try readRest() }
        }

        /// Reads (and drops) the values past those delivered, then checks the
        /// file's length against its header.
        private func readRest() throws {
            let promised = header.valueCount
            var seen = delivered * featureCount
            var scratch = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let got = try scratch.withUnsafeMutableBytes { try images.read(into: $0) }
                seen += got
                if got < scratch.count { break }
                if seen > promised { break }
            }
            if seen < promised { throw truncated(holding: seen) }
            // As `load`: a raw file may hold more than its header says, a
            // gzip stream that inflates past it is damaged.
            if images.compressed, seen > promised {
                throw UserError("\(images.path): " + IDXLoader.tooLong(maximum: header.dataOffset + promised, promised: IDXLoader.promise(header)))
            }
        }

        private func truncated(holding values: Int) -> UserError {
            UserError("\(images.path): truncated: the header promises \(IDXLoader.promise(header)) (\(header.valueCount) bytes) but the file holds \(values); download or copy the file again")
        }
    }
}
