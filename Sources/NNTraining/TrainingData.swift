// Loading the datasets a config names, checking them against the model, and
// scaling their features with statistics from the training set only.

import NNCore
import NNData

/// The datasets of a run, scaled and checked.
public struct PreparedData: Sendable {
    public var training: Dataset
    public var validation: Dataset?
    public var test: Dataset?
    /// Fitted on the training split; stored with the model.
    public var scaler: FeatureScaler
    /// Class names when the labels were names (CSV); stored with the model.
    public var classNames: [String]?
    /// The splits' fingerprint when it is known without reading every row
    /// (recorded in the data cache file when it was written); nil otherwise.
    public var fingerprint: DataFingerprint? = nil

    /// Width of a feature row (the model's input size).
    public var featureCount: Int { training.featureCount }

    /// Bytes of feature values over every split.
    public var featureBytes: Int {
        [training, validation, test].compactMap { $0 }.reduce(0) { $0 + $1.features.count * MemoryLayout<Float>.stride }
    }
}

/// Loads and prepares the data of a run.
public enum DataLoading {
    /// Loads one source.
    public static func load(_ source: DataSource, task: RunConfig.Task, classNames: [String]? = nil) throws -> Dataset {
        var dataset: Dataset
        switch source {
        case .csv(let path, let label, _):
            dataset = try CSVLoader.load(path: path, label: label,
                                         mode: task == .classification ? .classes : .values, classNames: classNames)
        case .idx(let images, let labels, let limit):
            dataset = try IDXLoader.load(images: images, labels: labels, limit: limit)
        case .synthetic(let name, let samples, let noise, let seed, _):
            dataset = try SyntheticData.make(name: name, samples: samples, noise: noise, seed: seed)
        }
        if let limit = source.limit, limit < dataset.count { dataset = dataset.prefix(limit) }
        return dataset
    }

    /// Loads the training data (split into training and validation), and the
    /// test set when asked; fits the scaler on the training split, or uses
    /// `scaler` (a saved model's) when given.
    public static func prepare(_ config: RunConfig, objective: Objective, includeTest: Bool, scaler fixedScaler: FeatureScaler? = nil,
                               classNames fixedClassNames: [String]? = nil) throws -> PreparedData {
        var training = try load(config.data.train, task: config.task, classNames: fixedClassNames)
        try check(training, objective: objective)
        let classNames = try Self.classNames(of: training, config, fixed: fixedClassNames)
        var validation = config.data.validationSplit > 0
            ? training.splitOffValidation(fraction: config.data.validationSplit) : nil
        try checkTrainingLeft(training, config)
        let scaler = fixedScaler ?? FeatureScaler(fitting: training, method: config.data.scale)
        try check(scaler, featureCount: training.featureCount, config)
        scaler.apply(to: &training)
        if validation != nil { scaler.apply(to: &validation!) }

        var test: Dataset?
        if includeTest, let source = config.data.test {
            var t = try load(source, task: config.task, classNames: classNames)
            try check(t, objective: objective)
            try checkTestWidth(t.featureCount, training: training.featureCount, source)
            scaler.apply(to: &t)
            test = t
        }
        return PreparedData(training: training, validation: validation, test: test, scaler: scaler, classNames: classNames)
    }

    /// The run's class names: the training labels' own (CSV names), a saved
    /// model's, or the config's `class_names`, which labels that are names
    /// cannot take.
    static func classNames(of training: Dataset, _ config: RunConfig, fixed: [String]?) throws -> [String]? {
        if training.classNames != nil, let named = config.data.classNames, fixed == nil {
            throw UserError("data.class_names: \(config.data.train.summary) already names its classes by its labels; remove class_names (\(named.joined(separator: ", ")))")
        }
        return training.classNames ?? fixed ?? config.data.classNames
    }

    /// Refuses a training split that validation_split left empty.
    static func checkTrainingLeft(_ training: Dataset, _ config: RunConfig) throws {
        if training.count == 0 {
            throw UserError("\(config.data.train.summary): no training samples are left after validation_split \(config.data.validationSplit); lower it or add data")
        }
    }

    /// Refuses a saved model's scaler fitted on another number of features.
    static func check(_ scaler: FeatureScaler, featureCount: Int, _ config: RunConfig) throws {
        guard scaler.offsets.count == featureCount || scaler.method == .none && scaler.offsets.isEmpty else {
            throw UserError("\(config.data.train.summary): the data has \(featureCount) features but the model was trained on \(scaler.offsets.count); use data with the same columns")
        }
    }

    /// Refuses a test set whose rows are not as wide as the training set's.
    static func checkTestWidth(_ width: Int, training: Int, _ source: DataSource) throws {
        guard width == training else {
            throw UserError("\(source.summary): the test set has \(width) features but the training set has \(training); give both the same columns")
        }
    }

    /// Checks that labels fit the output layer: class indices below the
    /// number of classes, regression targets as wide as the output.
    public static func check(_ dataset: Dataset, objective: Objective) throws {
        if objective.isClassifier {
            let classes = objective.classCount
            if dataset.labelWidth == objective.outputs && objective.outputs > 1 { return }  // already one-hot
            let labels = dataset.labels, width = dataset.labelWidth
            for i in 0..<dataset.count {
                let label = labels[i * width]
                if label < 0 || label >= Float(classes) || label != label.rounded() {
                    let named = dataset.classNames.map { " (classes: \($0.joined(separator: ", ")))" } ?? ""
                    throw UserError("\(dataset.location(ofSample: i)): label \(formatLabel(label)) is outside the output layer's \(classes) classes 0…\(classes - 1)\(named); give the last dense layer as many units as there are classes (\(objective.outputs == 1 ? "or 1 unit for two classes" : "at least \(Int(label) + 1)"))")
                }
            }
        } else if dataset.labelWidth != objective.outputs {
            throw UserError("\(dataset.name): the regression target has \(dataset.labelWidth) value\(dataset.labelWidth == 1 ? "" : "s") per sample but the output layer has \(objective.outputs) units; give the last dense layer \(dataset.labelWidth) unit\(dataset.labelWidth == 1 ? "" : "s")")
        }
    }

    private static func formatLabel(_ value: Float) -> String {
        value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(value)
    }
}
