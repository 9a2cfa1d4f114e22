// Writing the data cache file without loading the data: the rows of IDX
// images or CSV files are converted into the file in chunks, the scaler is
// fitted in passes over the training rows as written, and every split is
// scaled in place in the file, chunk by chunk. Only the labels (one value a
// sample; for CSV also the line each row starts on) and a chunk of rows are
// in memory at a time, so a dataset larger than memory can be cached, then
// mapped. The file is byte for byte the one that loading the data and
// writing it gives (`DataLoading.prepare`, `DatasetFile.write`), and the
// checks are `prepare`'s, in its order: an IDX file's labels are read before
// its images and checked at once; a CSV file's classes are known only once
// every row has been read, so its labels are checked after its rows.

import Foundation
import NNCore
import NNData
import SafeTensors

/// The rows of a data source read front to back in chunks.
protocol RowStream: AnyObject {
    /// The samples it delivers (after the source's limit).
    var count: Int { get }
    /// Values a row.
    var featureCount: Int { get }
    /// Whether `labels()` answers before the rows are read.
    var labelsComeFirst: Bool { get }
    /// Converts the next `rows.count / featureCount` rows into `rows`.
    func read(into rows: UnsafeMutableBufferPointer<Float>) throws
    /// The labels with the description a loaded dataset has and no feature
    /// rows; unless `labelsComeFirst`, only once every row has been read.
    func labels() throws -> Dataset
}

extension IDXLoader.Stream: RowStream {
    var labelsComeFirst: Bool { true }
    func labels() throws -> Dataset { labelsOnly }
}

extension CSVLoader.Stream: RowStream {
    var labelsComeFirst: Bool { false }
    func labels() throws -> Dataset { try labelsOnly() }
}

/// The file sources of a run (IDX or CSV), opened and, where their labels
/// come first, checked, ready to be written.
struct StreamedBuild {
    private let config: RunConfig
    private let objective: Objective
    private let includeTest: Bool
    private let fixedScaler: FeatureScaler?
    private let fixedClassNames: [String]?
    private let train: RowStream
    /// The training split's checks, done at once when its labels come first.
    private let checkedTraining: CheckedTraining?
    /// The test source, opened at once after the training split's checks.
    private let test: RowStream?
    /// The test labels, checked at once when they come first.
    private let checkedTest: Dataset?

    /// The labels-only training and validation splits and the run's class names.
    private struct CheckedTraining {
        var training: Dataset
        var validation: Dataset?
        var classNames: [String]?
    }

    /// Whether every source of a run can be written this way.
    static func applies(to sources: [DataSource]) -> Bool {
        sources.allSatisfy {
            switch $0 {
            case .idx: true
            // A pipe or a device cannot be mapped: it is loaded, then written.
            case .csv(let path, _, _): CSVLoader.canStream(path)
            case .synthetic: false
            }
        }
    }

    /// Opens and checks the sources, throwing what `DataLoading.prepare`
    /// throws for the same data, up to the first source whose labels come
    /// only with its rows (CSV); the rest is found while writing. Where a
    /// file holds two errors the first found can differ from loading's: a
    /// gzip image file that is cut short shows only as it is converted, after
    /// the checks of labels that come first and of a CSV test file's header.
    init(_ config: RunConfig, objective: Objective, includeTest: Bool, scaler: FeatureScaler?, classNames: [String]?) throws {
        (self.config, self.objective, self.includeTest) = (config, objective, includeTest)
        (fixedScaler, fixedClassNames) = (scaler, classNames)
        let train = try Self.open(config.data.train, task: config.task, classNames: classNames)
        self.train = train
        var checked: CheckedTraining?, test: RowStream?, checkedTest: Dataset?
        if train.labelsComeFirst {
            let training = try Self.check(training: try train.labels(), width: train.featureCount, config: config,
                                          objective: objective, scaler: scaler, classNames: classNames)
            checked = training
            if includeTest, let source = config.data.test {
                let stream = try Self.open(source, task: config.task, classNames: training.classNames)
                if stream.labelsComeFirst {
                    checkedTest = try Self.check(test: try stream.labels(), width: stream.featureCount,
                                                 trainingWidth: train.featureCount, source: source, objective: objective)
                }
                test = stream
            }
        }
        (checkedTraining, self.test, self.checkedTest) = (checked, test, checkedTest)
    }

    private static func open(_ source: DataSource, task: RunConfig.Task, classNames: [String]?) throws -> RowStream {
        switch source {
        case .idx(let images, let labels, let limit):
            return try IDXLoader.Stream(images: images, labels: labels, limit: limit)
        case .csv(let path, let label, let limit):
            return try CSVLoader.Stream(path: path, label: label, mode: task == .classification ? .classes : .values,
                                        classNames: classNames, limit: limit)
        case .synthetic:
            preconditionFailure("a streamed build of generated data")
        }
    }

    /// `DataLoading.prepare`'s checks of the training labels, in its order,
    /// and the validation tail cut from them.
    private static func check(training labels: Dataset, width: Int, config: RunConfig, objective: Objective,
                              scaler: FeatureScaler?, classNames: [String]?) throws -> CheckedTraining {
        try DataLoading.check(labels, objective: objective)
        let names = try DataLoading.classNames(of: labels, config, fixed: classNames)
        var training = labels
        let validation = config.data.validationSplit > 0 ? training.splitOffValidation(fraction: config.data.validationSplit) : nil
        try DataLoading.checkTrainingLeft(training, config)
        if let scaler { try DataLoading.check(scaler, featureCount: width, config) }
        return CheckedTraining(training: training, validation: validation, classNames: names)
    }

    /// `DataLoading.prepare`'s checks of the test labels.
    private static func check(test labels: Dataset, width: Int, trainingWidth: Int, source: DataSource,
                              objective: Objective) throws -> Dataset {
        try DataLoading.check(labels, objective: objective)
        try DataLoading.checkTestWidth(width, training: trainingWidth, source)
        return labels
    }

    /// Writes the file at `path` with the cache's `key`. Data errors are
    /// thrown as `UserError`s, the file's own as `DatasetFile.WriteFailure`;
    /// rows move in chunks of about `chunkBytes`.
    func write(to path: String, key: String, chunkBytes: Int) throws {
        let builder = try DatasetFile.Builder(path: path)
        let width = train.featureCount
        func copy(_ count: Int, from stream: RowStream) throws {
            let chunkRows = max(chunkBytes / max(stream.featureCount * MemoryLayout<Float>.stride, 1), 1)
            var rows = [Float](repeating: 0, count: min(chunkRows, count) * stream.featureCount)
            var done = 0
            while done < count {
                let n = min(chunkRows, count - done)
                try rows.withUnsafeMutableBufferPointer { buffer in
                    let chunk = UnsafeMutableBufferPointer(rebasing: buffer[0..<n * stream.featureCount])
                    try stream.read(into: chunk)
                    try builder.append(UnsafeBufferPointer(chunk))
                }
                done += n
            }
        }
        // The training rows, then the validation tail cut from the same file.
        let validationCount = config.data.validationSplit > 0
            ? Dataset.validationCount(of: train.count, fraction: config.data.validationSplit) : nil
        let trainingSplit = builder.beginSplit(samples: train.count - (validationCount ?? 0), featureCount: width)
        try copy(train.count - (validationCount ?? 0), from: train)
        try builder.endSplit(trainingSplit)
        var validationSplit: Int?
        if let validationCount {
            validationSplit = builder.beginSplit(samples: validationCount, featureCount: width)
            try copy(validationCount, from: train)
            try builder.endSplit(validationSplit!)
        } else {
            builder.addAbsentSplit()
        }
        let checked = try checkedTraining ?? Self.check(training: try train.labels(), width: width, config: config,
                                                         objective: objective, scaler: fixedScaler, classNames: fixedClassNames)
        builder.describe(split: trainingSplit, as: checked.training)
        if let validationSplit, let validation = checked.validation { builder.describe(split: validationSplit, as: validation) }

        var test = self.test, testLabels = checkedTest
        if includeTest, test == nil, let source = config.data.test {
            test = try Self.open(source, task: config.task, classNames: checked.classNames)
        }
        var testSplit: Int?
        if let test {
            testSplit = builder.beginSplit(samples: test.count, featureCount: test.featureCount)
            try copy(test.count, from: test)
            try builder.endSplit(testSplit!)
            let labels = try testLabels ?? Self.check(test: try test.labels(), width: test.featureCount, trainingWidth: width,
                                                      source: config.data.test!, objective: objective)
            builder.describe(split: testSplit!, as: labels)
            testLabels = labels
        } else {
            builder.addAbsentSplit()
        }

        let chunkRows = max(chunkBytes / (width * MemoryLayout<Float>.stride), 1)
        let scaler = try fixedScaler ?? fit(builder, chunkRows: chunkRows)
        // Scale every split in place; the fingerprint is of the rows as scaled.
        var fingerprints: [SplitFingerprint] = []
        for (split, dataset) in [(trainingSplit, checked.training), (validationSplit, checked.validation), (testSplit, testLabels)] {
            guard let split, let dataset else {
                fingerprints.append(SplitFingerprint(nil))
                continue
            }
            var checksum: UInt32 = 0
            try builder.visit(split: split, rows: chunkRows, rewrite: scaler.method != .none) { _, chunk in
                scaler.apply(toRows: chunk)
                checksum = CRC32C.checksum(UnsafeRawBufferPointer(chunk), continuing: checksum)
            }
            checksum = dataset.labels.withUnsafeBytes { CRC32C.checksum($0, continuing: checksum) }
            fingerprints.append(SplitFingerprint(samples: dataset.count, featureCount: width,
                                                 labelWidth: dataset.labelWidth, checksum: checksum))
        }
        let metadata = DataCache.Metadata(key: key, scaler: scaler, classNames: checked.classNames,
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
