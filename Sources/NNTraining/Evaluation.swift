// A saved model on new data: loss and metrics on a labelled set, and
// predictions for unlabelled rows.

import Foundation
import NNCore
import NNData

/// A saved model rebuilt on an accelerator.
public struct LoadedModel {
    public let snapshot: ModelSnapshot
    public let objective: Objective
    public let model: Sequential

    /// Reads `path` and rebuilds the model on `accelerator`.
    public init(path: String, accelerator: any Accelerator) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError("\(path): no such file; give a model.safetensors written by nntrain train")
        }
        snapshot = try ModelFile.read(path: path)
        objective = try snapshot.config.objective()
        model = Sequential(inputSize: snapshot.inputSize, layers: snapshot.config.layerSpecs, objective: objective,
                           accelerator: accelerator)
        snapshot.parameters.withUnsafeBufferPointer { accelerator.copy($0, to: model.parameters) }
    }

    /// Loss and metrics on `source` (default: the test set of the config
    /// saved in the model), scaled as the training set was.
    public func evaluate(on source: DataSource) throws -> Metrics {
        let config = snapshot.config
        var test = try DataLoading.load(source, task: config.task, classNames: snapshot.classNames)
        try DataLoading.check(test, objective: objective)
        guard test.featureCount == snapshot.inputSize else {
            throw UserError("\(source.summary): the test set has \(test.featureCount) features but the model takes \(snapshot.inputSize); use data with the model's columns")
        }
        snapshot.scaler.apply(to: &test)
        var batches = BatchAssembler(accelerator: model.accelerator, objective: objective, featureCount: test.featureCount,
                                     labelWidth: test.labelWidth, rows: 1024)
        let sums = Evaluation.statistics(model: model, dataset: test, range: 0..<test.count, batches: &batches)
        return Metrics(statistics: sums, samples: test.count, isClassifier: objective.isClassifier,
                       accuracyUnits: objective.accuracyUnitsPerSample, outputs: objective.outputs)
    }

    /// The model's outputs for every row of `features` (unscaled, as in the
    /// file), and for a classifier the predicted class of each row.
    public func predict(_ features: Dataset) -> Predictions {
        var scaled = features
        snapshot.scaler.apply(to: &scaled)
        let accelerator = model.accelerator
        let width = objective.outputs, chunk = 1024
        let input = accelerator.tensor(rows: chunk, columns: scaled.featureCount)
        var outputs: [Float] = []
        outputs.reserveCapacity(scaled.count * width)
        var start = 0
        while start < scaled.count {
            let n = min(chunk, scaled.count - start)
            scaled.features.withUnsafeBufferPointer {
                accelerator.copy(UnsafeBufferPointer(rebasing: $0[start * scaled.featureCount..<(start + n) * scaled.featureCount]),
                                 to: input.prefix(rows: n))
            }
            outputs += accelerator.values(model.predict(input.prefix(rows: n)))
            start += n
        }
        var classes: [Int]?
        if objective.isClassifier {
            classes = (0..<scaled.count).map { Evaluation.predictedClass(outputs[$0 * width..<($0 + 1) * width], objective) }
        }
        return Predictions(outputs: outputs, width: width, classes: classes, classNames: snapshot.classNames)
    }
}

/// A model's predictions for a set of rows.
public struct Predictions: Sendable {
    /// (rows × width) raw outputs: probabilities for a classifier, values for regression.
    public var outputs: [Float]
    public var width: Int
    /// The predicted class per row (classifiers only).
    public var classes: [Int]?
    /// Class names, index-aligned, when the labels were names.
    public var classNames: [String]?

    /// Rows predicted.
    public var count: Int { outputs.count / max(width, 1) }

    /// The name of class `k` (its number when classes had no names).
    public func className(_ k: Int) -> String { classNames.map { k < $0.count ? $0[k] : String(k) } ?? String(k) }
}

/// Passes over data without training.
enum Evaluation {
    /// The class one output row stands for: the unit over the threshold for
    /// a single output, else the largest output.
    static func predictedClass(_ row: ArraySlice<Float>, _ objective: Objective) -> Int {
        if row.count == 1 {
            let cut: Float = { if case .threshold(let c) = objective.accuracy { return c }; return 0.5 }()
            return row[row.startIndex] >= cut ? 1 : 0
        }
        return (row.indices.max { row[$0] < row[$1] } ?? row.startIndex) - row.startIndex
    }

    /// Counts of (true class, predicted class) over `range` of `dataset`,
    /// row-major (classes × classes), for a classifier with one label per sample.
    static func confusionCounts(model: Sequential, dataset: Dataset, range: Range<Int>, classes: Int,
                                batches: inout BatchAssembler) -> [Double] {
        var counts = [Double](repeating: 0, count: classes * classes)
        let width = model.objective.outputs, chunk = batches.rows
        var indices = [Int32](repeating: 0, count: chunk)
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(start + chunk, range.upperBound)
            for i in start..<end { indices[i - start] = Int32(i) }
            let (inputs, _) = indices.withUnsafeBufferPointer {
                batches.load(dataset, indices: UnsafeBufferPointer(rebasing: $0[0..<(end - start)]))
            }
            let outputs = model.accelerator.values(model.predict(inputs))
            for i in start..<end {
                let labels = dataset.labels[i * dataset.labelWidth..<(i + 1) * dataset.labelWidth]
                // One label per sample is the class; a one-hot row's class is its largest entry.
                let truth = labels.count == 1 ? Int(labels[labels.startIndex])
                    : (labels.indices.max { labels[$0] < labels[$1] } ?? labels.startIndex) - labels.startIndex
                let row = i - start
                let predicted = predictedClass(outputs[row * width..<(row + 1) * width], model.objective)
                if (0..<classes).contains(truth) && (0..<classes).contains(predicted) { counts[truth * classes + predicted] += 1 }
            }
            start = end
        }
        return counts
    }

    /// Summed statistics of `model` over `range` of `dataset`, in chunks.
    static func statistics(model: Sequential, dataset: Dataset, range: Range<Int>, batches: inout BatchAssembler) -> [Double] {
        let stats = model.accelerator.tensor(rows: 1, columns: Statistic.width)
        var start = range.lowerBound
        let chunk = batches.rows
        var indices = [Int32](repeating: 0, count: chunk)
        while start < range.upperBound {
            let end = min(start + chunk, range.upperBound)
            for i in start..<end { indices[i - start] = Int32(i) }
            let (inputs, targets) = indices.withUnsafeBufferPointer {
                batches.load(dataset, indices: UnsafeBufferPointer(rebasing: $0[0..<(end - start)]))
            }
            model.evaluate(inputs: inputs, targets: targets, statistics: stats)
            start = end
        }
        return model.accelerator.values(stats).map(Double.init)
    }
}
