// Writing the data cache file of IDX data without loading it: the images are
// converted into the file in chunks of rows, the scaler is fitted in passes
// over the training rows as written, and every split is scaled in place in
// the file, chunk by chunk. Only the labels (one value a sample) and a chunk
// of rows are in memory at a time, so a dataset larger than memory can be
// cached, then mapped. The file is byte for byte the one that loading the
// data and writing it gives (`DataLoading.prepare`, `DatasetFile.write`).

import Foundation
import NNCore
import NNData
import SafeTensors

/// The IDX sources of a run, opened and checked, ready to be written.
struct StreamedBuild {
    private let config: RunConfig
    private let train: IDXLoader.Stream
    private let test: IDXLoader.Stream?
    /// The labels-only splits, as `DataLoading.prepare` cuts them.
    private let training: Dataset, validation: Dataset?, testLabels: Dataset?
    private let fixedScaler: FeatureScaler?
    private let classNames: [String]?

    /// Opens and checks the sources, throwing what `DataLoading.prepare`
    /// throws for the same data (except a truncated image file, found while writing).
    init(_ config: RunConfig, objective: Objective, includeTest: Bool, scaler: FeatureScaler?, classNames: [String]?) throws {
        guard case .idx(let images, let labels, let limit) = config.data.train else {
            preconditionFailure("a streamed build of data that is not IDX")
        }
        self.config = config
        train = try IDXLoader.Stream(images: images, labels: labels, limit: limit)
        var training = train.labelsOnly
        try DataLoading.check(training, objective: objective)
        self.classNames = classNames ?? config.data.classNames
        validation = config.data.validationSplit > 0 ? training.splitOffValidation(fraction: config.data.validationSplit) : nil
        try DataLoading.checkTrainingLeft(training, config)
        self.training = training
        if let scaler { try DataLoading.check(scaler, featureCount: train.featureCount, config) }
        fixedScaler = scaler
        if includeTest, let source = config.data.test, case .idx(let images, let labels, let limit) = source {
            let stream = try IDXLoader.Stream(images: images, labels: labels, limit: limit)
            try DataLoading.check(stream.labelsOnly, objective: objective)
            try DataLoading.checkTestWidth(stream.featureCount, training: train.featureCount, source)
            test = stream
            testLabels = stream.labelsOnly
        } else {
            test = nil
            testLabels = nil
        }
    }

    /// Writes the file at `path` with the cache's `key`. Data errors are
    /// thrown as `UserError`s, the file's own as `DatasetFile.WriteFailure`;
    /// rows move in chunks of about `chunkBytes`.
    func write(to path: String, key: String, chunkBytes: Int) throws {
        let builder = try DatasetFile.Builder(path: path)
        let width = train.featureCount
        let chunkRows = max(chunkBytes / (width * MemoryLayout<Float>.stride), 1)
        var rows = [Float](repeating: 0, count: chunkRows * width)
        func copy(_ count: Int, from stream: IDXLoader.Stream) throws {
            var done = 0
            while done < count {
                let n = min(chunkRows, count - done)
                try rows.withUnsafeMutableBufferPointer { buffer in
                    let chunk = UnsafeMutableBufferPointer(rebasing: buffer[0..<n * width])
                    try stream.read(into: chunk)
                    try builder.append(UnsafeBufferPointer(chunk))
                }
                done += n
            }
        }
        // The training rows, then the validation tail cut from the same file.
        var splits = [builder.beginSplit(describing: training, featureCount: width)]
        try copy(training.count, from: train)
        try builder.endSplit(splits[0])
        if let validation {
            splits.append(builder.beginSplit(describing: validation, featureCount: width))
            try copy(validation.count, from: train)
            try builder.endSplit(splits[1])
        } else {
            builder.addAbsentSplit()
        }
        if let test, let testLabels {
            splits.append(builder.beginSplit(describing: testLabels, featureCount: width))
            try copy(test.count, from: test)
            try builder.endSplit(splits.last!)
        } else {
            builder.addAbsentSplit()
        }
        rows = []

        let scaler = try fixedScaler ?? fit(builder, chunkRows: chunkRows)
        // Scale every split in place; the fingerprint is of the rows as scaled.
        let labelled = [training, validation, testLabels]
        var fingerprints: [SplitFingerprint] = []
        var next = 0
        for dataset in labelled {
            guard let dataset else {
                fingerprints.append(SplitFingerprint(nil))
                continue
            }
            var checksum: UInt32 = 0
            try builder.visit(split: splits[next], rows: chunkRows, rewrite: scaler.method != .none) { _, chunk in
                scaler.apply(toRows: chunk)
                checksum = CRC32C.checksum(UnsafeRawBufferPointer(chunk), continuing: checksum)
            }
            checksum = dataset.labels.withUnsafeBytes { CRC32C.checksum($0, continuing: checksum) }
            fingerprints.append(SplitFingerprint(samples: dataset.count, featureCount: width,
                                                 labelWidth: dataset.labelWidth, checksum: checksum))
            next += 1
        }
        let metadata = DataCache.Metadata(key: key, scaler: scaler, classNames: classNames,
                                          fingerprint: DataFingerprint(splits: fingerprints))
        try builder.finish(metadata: try metadata.text(for: path))
    }

    /// Fits the run's scaler on the training split as written (first split).
    private func fit(_ builder: DatasetFile.Builder, chunkRows: Int) throws -> FeatureScaler {
        var statistics = FeatureStatistics(method: config.data.scale, featureCount: train.featureCount)
        guard config.data.scale != .none else { return statistics.scaler() }
        try builder.visit(split: 0, rows: chunkRows, rewrite: false) { _, chunk in statistics.add(UnsafeBufferPointer(chunk)) }
        if statistics.needsDeviations {
            statistics.endFirstPass()
            try builder.visit(split: 0, rows: chunkRows, rewrite: false) { _, chunk in
                statistics.addDeviations(UnsafeBufferPointer(chunk))
            }
        }
        return statistics.scaler()
    }
}
