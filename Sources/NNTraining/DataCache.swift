// One copy of the prepared data per host. The first rank on a host prepares
// the data once (IDX and CSV files streamed into the file without loading
// them, `StreamedBuild`) and writes it to a cache file (`DatasetFile`);
// every rank on the host then maps that file read-only, so
// the kernel keeps one copy of the feature rows in its page cache for all of
// them, pages in only the rows the sampler touches, and can page them out
// again under memory pressure. A later run with the same data and the same
// files finds the file and skips loading altogether.

import Foundation
import NNCore
import NNData

#if canImport(Glibc)
import Glibc
#endif

/// A directory of prepared-data files, one per (data configuration, files).
public struct DataCache: Sendable {
    /// Where the files live (created when missing).
    public let directory: String
    /// Whether file data is written without loading it (`streams`); off only
    /// to compare the two ways of writing.
    var streaming = true
    /// Bytes of rows per chunk of a streamed write; small only in tests.
    var chunkBytes = 16 << 20
    /// Data whose features take fewer bytes than this is loaded by each rank:
    /// sharing it saves little, and synthetic data is never read from files.
    public static let minimumBytes = 1 << 20

    public init(directory: String) { self.directory = directory }

    /// What `prepare` did.
    public enum Outcome: Equatable, Sendable {
        /// The file was there already.
        case found(path: String)
        /// This process prepared the data and wrote the file.
        case written(path: String)
        /// The file could not be written (the reason); the ranks load the data themselves.
        case unavailable(String)
    }

    /// Whether this run's data is shared through the cache: file sources
    /// (IDX, CSV) whose features take at least `minimumBytes`, judged from
    /// the IDX headers or, with a CSV file among them, the files' sizes.
    public static func applies(to config: RunConfig) -> Bool {
        let sources = [config.data.train] + [config.data.test].compactMap { $0 }
        if sources.contains(where: { if case .synthetic = $0 { return true } else { return false } }) { return false }
        // A CSV file's size is enough to judge by; its shape costs a pass over it.
        let csv = sources.contains { if case .csv = $0 { return true } else { return false } }
        if !csv, let shape = DataShape.expected(config) {
            let (bytes, overflow) = shape.samples.multipliedReportingOverflow(by: shape.featureCount * MemoryLayout<Float>.stride)
            return overflow || bytes >= minimumBytes
        }
        let sizes = sources.flatMap(\.files).map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
        return sizes.reduce(0, +) >= minimumBytes
    }

    /// The cache file for this run's data: named by a hash of the data
    /// configuration, what the model needs of it, and every source file's
    /// identity (device, inode, size, modification time), so changing any of
    /// them names another file. Throws when a source file cannot be read.
    public func path(for config: RunConfig, objective: Objective, includeTest: Bool,
                     scaler: FeatureScaler?, classNames: [String]?) throws -> (path: String, key: String) {
        let key = try Self.key(config, objective: objective, includeTest: includeTest, scaler: scaler, classNames: classNames)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return (directory + "/data-" + String(format: "%016llx", hash) + ".nndata", key)
    }

    /// On the first rank of a host: finds this run's file, or loads the data
    /// and writes it. Errors in the data itself are thrown as by
    /// `DataLoading.prepare`; a file that cannot be written is `.unavailable`.
    public func prepare(_ config: RunConfig, objective: Objective, includeTest: Bool,
                        scaler: FeatureScaler?, classNames: [String]?) throws -> Outcome {
        let (path, key) = try path(for: config, objective: objective, includeTest: includeTest, scaler: scaler, classNames: classNames)
        if (try? map(path, key: key)) != nil { return .found(path: path) }
        if Self.streams(config, includeTest: includeTest) && streaming {
            if let reason = createDirectory() { return .unavailable(reason) }
            let build = try StreamedBuild(config, objective: objective, includeTest: includeTest,
                                          scaler: scaler, classNames: classNames)
            do {
                try build.write(to: path, key: key, chunkBytes: chunkBytes)
            } catch let failure as DatasetFile.WriteFailure {
                return .unavailable(failure.message)
            }
            return .written(path: path)
        }
        let data = try DataLoading.prepare(config, objective: objective, includeTest: includeTest, scaler: scaler, classNames: classNames)
        if let reason = createDirectory() { return .unavailable(reason) }
        let metadata = Metadata(key: key, scaler: data.scaler, classNames: data.classNames, fingerprint: DataFingerprint(data))
        do {
            try DatasetFile.write([data.training, data.validation, data.test], metadata: try metadata.text(for: path), to: path)
        } catch let error as UserError {
            return .unavailable(error.message)
        } catch let failure as DatasetFile.WriteFailure {
            return .unavailable(failure.message)
        }
        return .written(path: path)
    }

    /// Whether `prepare` writes the file without loading the data (every
    /// source is IDX or a regular CSV file: its rows are converted, fitted
    /// and scaled in passes over the file being written, so data larger than
    /// memory can be cached); other sources are loaded once, then written.
    public static func streams(_ config: RunConfig, includeTest: Bool = true) -> Bool {
        StreamedBuild.applies(to: [config.data.train] + (includeTest ? [config.data.test].compactMap { $0 } : []))
    }

    /// Nil when the cache file at `path` is there already, or the file
    /// system of the directory (or of its nearest existing parent) can hold
    /// one of data with `shape`; else why not.
    public func spaceShortfall(for shape: DataShape, path: String) -> String? {
        if FileManager.default.fileExists(atPath: path) { return nil }
        let needed = Count.multiply(shape.samples, Count.add(shape.featureCount, shape.labelWidth), MemoryLayout<Float>.stride)
        var existing = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        while !FileManager.default.fileExists(atPath: existing), existing != "/" {
            existing = (existing as NSString).deletingLastPathComponent
            if existing.isEmpty { existing = "/" }
        }
        guard let free = RunDirectoryCheck.availableBytes(existing), needed > free else { return nil }
        return "the data cache \(directory) has \(ByteCount.format(free)) free, too little for the \(ByteCount.format(needed)) of this data"
    }

    /// Nil when the directory exists or was made, else why it cannot be.
    /// Files that killed writers on this host left there are removed.
    private func createDirectory() -> String? {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            DatasetFile.removeAbandonedTemporaries(in: directory)
            return nil
        } catch {
            return "\(directory): cannot create the directory (\(error.localizedDescription))"
        }
    }

    /// The shape of this run's data as its cache file holds it, when the
    /// file is there (a map, no pass over the sources: a CSV file's shape
    /// would otherwise cost reading it through); nil otherwise.
    public func shape(for config: RunConfig, objective: Objective, includeTest: Bool,
                      scaler: FeatureScaler?, classNames: [String]?) -> DataShape? {
        guard let mapped = try? map(for: config, objective: objective, includeTest: includeTest, scaler: scaler,
                                    classNames: classNames) else { return nil }
        return DataShape(mapped)
    }

    /// Maps this run's file; nil when it is absent or holds other data.
    public func map(for config: RunConfig, objective: Objective, includeTest: Bool,
                    scaler: FeatureScaler?, classNames: [String]?) throws -> PreparedData? {
        let (path, key) = try path(for: config, objective: objective, includeTest: includeTest, scaler: scaler, classNames: classNames)
        return try? map(path, key: key)
    }

    private func map(_ path: String, key: String) throws -> PreparedData {
        let (datasets, text) = try DatasetFile.read(path)
        guard let metadata = try? JSONDecoder().decode(Metadata.self, from: Data(text.utf8)), metadata.key == key,
              datasets.count == 3, let training = datasets[0] else {
            throw UserError("\(path): holds other data")
        }
        var data = PreparedData(training: training, validation: datasets[1], test: datasets[2],
                                scaler: metadata.scaler, classNames: metadata.classNames)
        data.fingerprint = metadata.fingerprint
        return data
    }

    /// What the file holds besides the datasets.
    struct Metadata: Codable {
        var key: String
        var scaler: FeatureScaler
        var classNames: [String]?
        /// Of the rows as written, so ranks agree on the data without reading it all again.
        var fingerprint: DataFingerprint

        /// As JSON with sorted keys (the same data gives the same file);
        /// throws a `WriteFailure` naming `path` for a value JSON cannot hold.
        func text(for path: String) throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            guard let data = try? encoder.encode(self) else {
                throw DatasetFile.WriteFailure(message: "\(path): cannot encode the dataset cache's metadata (a scaling value that is not a finite number); pass --data-cache none")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Everything the prepared data depends on, as text.
    static func key(_ config: RunConfig, objective: Objective, includeTest: Bool,
                    scaler: FeatureScaler?, classNames: [String]?) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var parts = ["nntrain prepared data 2",
                     String(decoding: try encoder.encode(config.data), as: UTF8.self),
                     "task \(config.task.rawValue), classes \(objective.classCount), outputs \(objective.outputs), test \(includeTest)",
                     scaler.map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) } ?? "fitted",
                     classNames?.joined(separator: "\u{1f}") ?? "-"]
        let sources = [config.data.train] + (includeTest ? [config.data.test].compactMap { $0 } : [])
        for file in sources.flatMap(\.files) {
            var info = stat()
            guard stat(file, &info) == 0 else {
                throw UserError("\(file): cannot read (\(String(cString: strerror(errno)))); check the path and its permissions")
            }
            parts.append("\(file) \(info.st_dev) \(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)")
        }
        return parts.joined(separator: "\n")
    }
}

extension DataSource {
    /// The files a source reads.
    var files: [String] {
        switch self {
        case .csv(let path, _, _): [path]
        case .idx(let images, let labels, _): [images, labels]
        case .synthetic: []
        }
    }
}
