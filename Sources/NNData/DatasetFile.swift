// A file of prepared datasets that every process on a host maps read-only:
// the decoded, scaled Float32 feature rows of each split at page-aligned
// offsets, so they are used in place, and a JSON header with the rest (widths,
// labels, names, where each sample came from, and the caller's own metadata).
//
// Layout: "NNDATA02", the header's offset and length (two UInt64,
// little-endian), each split's features from byte 4096 on at multiples of
// 4096, then the header (JSON) after the last split. The header comes last
// so that a file can be written in one pass over rows that never sit in
// memory together (`Builder`): the metadata it holds (fitted scaling, checksums)
// is known only once the rows have been seen.

import Foundation
import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Writes and maps files of prepared datasets.
public enum DatasetFile {
    static let magic = Array("NNDATA02".utf8)
    static let alignment = 4096
    /// The magic and the header's offset and length.
    static let prefixLength = 24

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
        do {
            let builder = try Builder(path: path)
            for dataset in datasets {
                guard let dataset else {
                    builder.addAbsentSplit()
                    continue
                }
                let split = builder.beginSplit(describing: dataset, featureCount: dataset.featureCount)
                try dataset.features.withUnsafeBufferPointer { try builder.append($0) }
                try builder.endSplit(split)
            }
            try builder.finish(metadata: metadata)
        } catch let failure as WriteFailure {
            throw UserError(failure.message)
        }
    }

    /// The file could not be created or written (the builder's only error):
    /// a matter of the cache's directory, not of the data.
    public struct WriteFailure: Error, Sendable {
        /// One line naming the file and what to do.
        public var message: String
        public init(message: String) { self.message = message }
    }

    /// Writes a dataset file split by split and rows at a time, so a dataset
    /// larger than memory can be written: rows are appended in order, a
    /// split's rows can be read back and rewritten in chunks (to fit and
    /// apply scaling), and `finish` writes the header and renames the
    /// temporary file into place. A builder dropped before `finish` removes
    /// its temporary file. Every error it throws is a `WriteFailure`.
    public final class Builder {
        /// The file it will become.
        public let path: String
        private let temporary: String
        private var descriptor: Int32
        private var splits: [Split?] = []
        /// Bytes written so far (the end of the file).
        private var end = DatasetFile.alignment
        private var finished = false

        /// Creates the temporary file next to `path`.
        public init(path: String) throws {
            self.path = path
            temporary = DatasetFile.temporaryName(for: path, process: getpid())
            descriptor = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                finished = true  // nothing was created to remove
                throw WriteFailure(message: "\(path): cannot create the dataset cache (\(FileBytes.describeErrno(errno))); check the directory's permissions or pass --data-cache none")
            }
        }

        deinit {
            if descriptor >= 0 { close(descriptor) }
            if !finished { unlink(temporary) }
        }

        /// Records a split the file does not hold (read back as nil).
        public func addAbsentSplit() { splits.append(nil) }

        /// Starts a split with `dataset`'s description (name, labels,
        /// names, origin) and rows of `featureCount` values; its rows are
        /// appended next. `dataset` may hold no feature rows (width 0): only
        /// its labels and description are used. Returns the split's index.
        public func beginSplit(describing dataset: Dataset, featureCount: Int) -> Int {
            let index = beginSplit(samples: dataset.count, featureCount: featureCount)
            describe(split: index, as: dataset)
            return index
        }

        /// Starts a split of `samples` rows of `featureCount` values, to be
        /// described (`describe`) before `finish`, when its labels are known
        /// only after its rows. Returns the split's index.
        public func beginSplit(samples: Int, featureCount: Int) -> Int {
            splits.append(Split(name: "", featureCount: featureCount, labelWidth: 0, samples: samples, offset: end,
                                labels: [], classNames: nil, featureNames: nil, origin: .memory, originOffset: 0))
            return splits.count - 1
        }

        /// Gives split `index` `dataset`'s description (name, labels, names,
        /// origin); `dataset` has the split's samples and may hold no feature rows.
        public func describe(split index: Int, as dataset: Dataset) {
            guard var split = splits[index] else { return }
            precondition(dataset.count == split.samples, "split \(index): \(dataset.count) samples described, \(split.samples) written")
            split.name = dataset.name
            split.labelWidth = dataset.labelWidth
            split.labels = dataset.labels
            split.classNames = dataset.classNames
            split.featureNames = dataset.featureNames
            split.origin = dataset.origin
            split.originOffset = dataset.originOffset
            splits[index] = split
        }

        /// Appends feature rows to the split begun last.
        public func append(_ values: UnsafeBufferPointer<Float>) throws {
            guard let base = values.baseAddress, !values.isEmpty else { return }
            try writeAll(UnsafeRawBufferPointer(start: base, count: values.count * MemoryLayout<Float>.stride), at: end)
            end += values.count * MemoryLayout<Float>.stride
        }

        /// Ends split `index`: checks that all its rows were appended and pads
        /// the file to the next page, where the next split starts.
        public func endSplit(_ index: Int) throws {
            guard let split = splits[index] else { return }
            let bytes = split.samples * split.featureCount * MemoryLayout<Float>.stride
            precondition(end - split.offset == bytes, "split \(split.name): \(end - split.offset) bytes appended, \(bytes) expected")
            let padded = DatasetFile.padded(end)
            if padded > end {
                let zeros = [UInt8](repeating: 0, count: padded - end)
                try zeros.withUnsafeBytes { try writeAll($0, at: end) }
                end = padded
            }
        }

        /// Reads split `index` back in chunks of at most `rows` rows and
        /// passes each to `body` with its first row's index; when `rewrite`
        /// is set, writes the chunk back as `body` left it.
        public func visit(split index: Int, rows: Int, rewrite: Bool,
                          _ body: (_ firstRow: Int, _ chunk: UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
            guard let split = splits[index], split.featureCount > 0 else { return }
            let chunkRows = max(rows, 1)
            var buffer = [Float](repeating: 0, count: min(chunkRows, max(split.samples, 1)) * split.featureCount)
            var row = 0
            while row < split.samples {
                let count = min(chunkRows, split.samples - row)
                let offset = split.offset + row * split.featureCount * MemoryLayout<Float>.stride
                try buffer.withUnsafeMutableBufferPointer { values in
                    let chunk = UnsafeMutableBufferPointer(rebasing: values[0..<count * split.featureCount])
                    let bytes = UnsafeMutableRawBufferPointer(chunk)
                    try readAll(bytes, at: offset)
                    try body(row, chunk)
                    if rewrite { try writeAll(UnsafeRawBufferPointer(bytes), at: offset) }
                }
                row += count
            }
        }

        /// Writes the header with `metadata`, then renames the file into place.
        public func finish(metadata: String) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys  // the same datasets give the same bytes
            guard let encoded = try? Array(encoder.encode(Header(splits: splits, metadata: metadata))) else {
                throw WriteFailure(message: "\(path): cannot encode the dataset cache's header (a label that is not a finite number); pass --data-cache none")
            }
            try encoded.withUnsafeBytes { try writeAll($0, at: end) }
            var prefix = DatasetFile.magic
            for value in [UInt64(end), UInt64(encoded.count)] {
                withUnsafeBytes(of: value.littleEndian) { prefix += $0 }
            }
            try prefix.withUnsafeBytes { try writeAll($0, at: 0) }
            // On disk before it is renamed into place, so a crash leaves the
            // whole file or none under the name.
            if fsync(descriptor) != 0 { throw failure(errno) }
            let status = close(descriptor)
            descriptor = -1
            if status != 0 { throw failure(errno) }
            if rename(temporary, path) != 0 { throw failure(errno) }
            finished = true
            let directory = open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                                 O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if directory >= 0 {
                _ = fsync(directory)
                close(directory)
            }
        }

        private func failure(_ code: Int32) -> WriteFailure {
            WriteFailure(message: "\(path): cannot write the dataset cache (\(FileBytes.describeErrno(code))); free space there or pass --data-cache none")
        }

        private func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
            var done = 0
            while done < bytes.count {
                let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure(errno)
                }
                done += n
            }
        }

        private func readAll(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) throws {
            var done = 0
            while done < bytes.count {
                let n = pread(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw failure(n < 0 ? errno : EIO) }
                done += n
            }
        }
    }

    /// Maps the file at `path`: the datasets in the order written (features
    /// mapped, labels in memory) and the metadata. Throws a `UserError` when
    /// the file is not one of these or is cut short.
    public static func read(_ path: String) throws -> (datasets: [Dataset?], metadata: String) {
        let file = try MappedFile(path: path)
        func damaged(_ detail: String) -> UserError {
            UserError("\(path): not a complete dataset cache (\(detail)); delete it so it is written again")
        }
        guard file.byteCount >= prefixLength,
              UnsafeRawBufferPointer(start: file.base, count: magic.count).elementsEqual(magic) else {
            throw damaged("no NNDATA02 header")
        }
        func field(_ index: Int) -> Int {
            Int(truncatingIfNeeded: UInt64(littleEndian: file.base.loadUnaligned(fromByteOffset: magic.count + 8 * index, as: UInt64.self)))
        }
        let start = field(0), length = field(1)
        guard start >= alignment, length >= 0, start <= file.byteCount, length <= file.byteCount - start else {
            throw damaged("header at \(start), \(length) bytes, in a file of \(file.byteCount)")
        }
        let json = Data(UnsafeRawBufferPointer(start: file.base + start, count: length))
        guard let header = try? JSONDecoder().decode(Header.self, from: json) else { throw damaged("unreadable header") }
        var datasets: [Dataset?] = []
        for split in header.splits {
            guard let split else {
                datasets.append(nil)
                continue
            }
            let (values, overflow) = split.samples.multipliedReportingOverflow(by: split.featureCount)
            guard !overflow, split.samples >= 0, split.featureCount >= 0, split.offset >= alignment,
                  split.offset % alignment == 0, split.offset <= start,
                  values <= (start - split.offset) / MemoryLayout<Float>.stride,
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

    /// The temporary file a writer on this host with process id `process`
    /// uses for `path`: `PATH.HOST.PID.tmp`, so writers on hosts that share
    /// the directory never collide, and a writer that died can be told apart.
    static func temporaryName(for path: String, process: pid_t) -> String {
        path + ".\(hostName).\(process).tmp"
    }

    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "host"
        return name.isEmpty ? "host" : name.replacingOccurrences(of: "/", with: "_")
    }()

    /// Removes the temporary files in `directory` that writers on this host
    /// left when they were killed (their process is gone); returns their names.
    @discardableResult
    public static func removeAbandonedTemporaries(in directory: String) -> [String] {
        let suffix = ".tmp", marker = "." + hostName + "."
        var removed: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(suffix) {
            guard let range = name.range(of: marker, options: .backwards) else { continue }
            let digits = name[range.upperBound..<name.index(name.endIndex, offsetBy: -suffix.count)]
            guard let process = pid_t(digits), process > 0, kill(process, 0) != 0, errno == ESRCH else { continue }
            if unlink(directory + "/" + name) == 0 { removed.append(name) }
        }
        return removed
    }

    static func padded(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }
}
