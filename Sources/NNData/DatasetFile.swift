// A file of prepared datasets that every process on a host maps read-only:
// the decoded, scaled Float32 feature rows of each split at page-aligned
// offsets, so they are used in place, and a JSON header with the rest (widths,
// labels, names, where each sample came from, and the caller's own metadata).
//
// Layout: "NNDATA01", the header's length (UInt64, little-endian), the
// header (JSON), then each split's features at a multiple of 4096 bytes.

import Foundation
import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `write(2)`, named apart from `DatasetFile.write`.
private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}

/// Writes and maps files of prepared datasets.
public enum DatasetFile {
    static let magic = Array("NNDATA01".utf8)
    static let alignment = 4096

    /// One split as the header describes it.
    struct Split: Codable {
        var name: String
        var featureCount: Int
        var labelWidth: Int
        var samples: Int
        /// Byte offset of the features in the file.
        var offset: Int
        var labels: [Float]
        var classNames: [String]?
        var featureNames: [String]?
        var origin: Dataset.Origin
        var originOffset: Int
    }

    struct Header: Codable {
        var splits: [Split?]
        var metadata: String
    }

    /// Writes `datasets` (nil for a split that is absent) and `metadata` to
    /// `path` through a temporary file renamed into place, so a reader sees
    /// the whole file or none. Throws a `UserError` naming the file.
    public static func write(_ datasets: [Dataset?], metadata: String, to path: String) throws {
        var splits: [Split?] = []
        var offset = 0  // relative to the first data byte, fixed below
        for dataset in datasets {
            guard let dataset else {
                splits.append(nil)
                continue
            }
            splits.append(Split(name: dataset.name, featureCount: dataset.featureCount, labelWidth: dataset.labelWidth,
                                samples: dataset.count, offset: offset, labels: dataset.labels,
                                classNames: dataset.classNames, featureNames: dataset.featureNames,
                                origin: dataset.origin, originOffset: dataset.originOffset))
            offset += padded(dataset.features.count * MemoryLayout<Float>.stride)
        }
        // The header's length depends on the offsets it holds: encode with
        // the data placed after a header of the first guess, then again
        // until the guess holds.
        var dataStart = alignment
        var encoded: [UInt8]
        while true {
            let placed = splits.map { $0.map { var s = $0; s.offset += dataStart; return s } }
            encoded = Array(try JSONEncoder().encode(Header(splits: placed, metadata: metadata)))
            let needed = padded(magic.count + 8 + encoded.count)
            if needed <= dataStart { break }
            dataStart = needed
        }

        let temporary = path + ".\(getpid()).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw UserError("\(path): cannot create the dataset cache (\(FileBytes.describeErrno(errno))); check the directory's permissions or pass --data-cache none")
        }
        var closed = false
        defer {
            if !closed { close(descriptor) }
        }
        func fail(_ code: Int32) -> UserError {
            unlink(temporary)
            return UserError("\(path): cannot write the dataset cache (\(FileBytes.describeErrno(code))); free space there or pass --data-cache none")
        }
        var length = UInt64(encoded.count).littleEndian
        var head = magic + withUnsafeBytes(of: &length) { Array($0) } + encoded
        head += [UInt8](repeating: 0, count: dataStart - head.count)
        if let code = head.withUnsafeBytes({ writeAll(descriptor, $0) }) { throw fail(code) }
        for dataset in datasets.compactMap({ $0 }) {
            let bytes = dataset.features.count * MemoryLayout<Float>.stride
            if let code = dataset.features.withUnsafeBytes({ writeAll(descriptor, $0) }) { throw fail(code) }
            let padding = [UInt8](repeating: 0, count: padded(bytes) - bytes)
            if let code = padding.withUnsafeBytes({ writeAll(descriptor, $0) }) { throw fail(code) }
        }
        closed = true
        if close(descriptor) != 0 { throw fail(errno) }
        if rename(temporary, path) != 0 { throw fail(errno) }
    }

    /// Maps the file at `path`: the datasets in the order written (features
    /// mapped, labels in memory) and the metadata. Throws a `UserError` when
    /// the file is not one of these or is cut short.
    public static func read(_ path: String) throws -> (datasets: [Dataset?], metadata: String) {
        let file = try MappedFile(path: path)
        func damaged(_ detail: String) -> UserError {
            UserError("\(path): not a complete dataset cache (\(detail)); delete it so it is written again")
        }
        let prefix = magic.count + 8
        guard file.byteCount >= prefix,
              UnsafeRawBufferPointer(start: file.base, count: magic.count).elementsEqual(magic) else {
            throw damaged("no NNDATA01 header")
        }
        let length = Int(UInt64(littleEndian: file.base.loadUnaligned(fromByteOffset: magic.count, as: UInt64.self)))
        guard length >= 0, length <= file.byteCount - prefix else { throw damaged("header length \(length)") }
        let json = Data(UnsafeRawBufferPointer(start: file.base + prefix, count: length))
        guard let header = try? JSONDecoder().decode(Header.self, from: json) else { throw damaged("unreadable header") }
        var datasets: [Dataset?] = []
        for split in header.splits {
            guard let split else {
                datasets.append(nil)
                continue
            }
            let (values, overflow) = split.samples.multipliedReportingOverflow(by: split.featureCount)
            guard !overflow, split.samples >= 0, split.featureCount >= 0, split.offset >= prefix + length,
                  split.offset % alignment == 0, split.offset <= file.byteCount,
                  values <= (file.byteCount - split.offset) / MemoryLayout<Float>.stride,
                  split.labels.count == split.samples * split.labelWidth else {
                throw damaged("split \(split.name) outside the file")
            }
            var dataset = Dataset(name: split.name, rows: FloatRows(mapped: file, offset: split.offset, count: values),
                                  featureCount: split.featureCount, labels: split.labels, labelWidth: split.labelWidth,
                                  classNames: split.classNames, origin: split.origin)
            dataset.featureNames = split.featureNames
            dataset.originOffset = split.originOffset
            datasets.append(dataset)
        }
        return (datasets, header.metadata)
    }

    private static func padded(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }

    /// Writes all of `bytes`; the errno of a failure, nil when written.
    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var done = 0
        while done < bytes.count {
            let n = posixWrite(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += n
        }
        return nil
    }
}
