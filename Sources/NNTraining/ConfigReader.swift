// Reads a YAML run configuration into a `RunConfig`, checking every key.
// Each problem becomes one line: `FILE:LINE: FIELD: what is wrong; what to do`.

import Foundation
import NNCore
import NNData
import Yams

/// Parses and validates run configurations.
public enum ConfigReader {
    /// Reads and validates the YAML file at `path`.
    public static func read(path: String) throws -> RunConfig {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError("\(path): no such config file; give an existing file, or use a preset (\(Presets.names.joined(separator: ", ")))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("\(path): cannot read the config file; check its permissions")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(String(decoding: data, as: UTF8.self), file: path, baseDirectory: directory)
    }

    /// Parses YAML (or JSON, which is YAML) text. Relative data paths are
    /// taken relative to `baseDirectory`.
    public static func parse(_ text: String, file: String, baseDirectory: String? = nil) throws -> RunConfig {
        try checkNesting(text, file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw UserError("\(file): \(describe(error)); fix the YAML syntax")
        }
        guard let root else { throw UserError("\(file): the config is empty; see README.md for an example") }
        return try Parser(file: file, baseDirectory: baseDirectory).config(root)
    }

    /// Deeper flow nesting (`[[[…` or `{{{…`) than any config needs.
    static let maximumFlowDepth = 64
    /// More block levels (indentation columns plus `- ` and `? ` on a line) than any config needs.
    static let maximumBlockDepth = 128

    /// Refuses text nested past the limits before Yams sees it: its composer
    /// recurses once per level, so a file of ten thousand `[` overflowed the
    /// stack. Brackets are counted everywhere, quoted or not, which can only
    /// overestimate the depth.
    static func checkNesting(_ text: String, file: String) throws {
        var flow = 0, line = 1, column = 0, atIndent = true, block = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\n"):
                line += 1
                column = 0
                atIndent = true
                block = 0
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                flow += 1
                guard flow <= maximumFlowDepth else {
                    throw UserError("\(file):\(line): the YAML nests more than \(maximumFlowDepth) brackets deep; a config needs a few levels, check the file")
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                flow = max(flow - 1, 0)
            default:
                break
            }
            if atIndent {
                // Leading spaces, and the `- ` / `? ` indicators that open a level on the same line.
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "?") {
                    column += 1
                    if byte != UInt8(ascii: " ") { block += 1 }
                    guard column + block <= maximumBlockDepth else {
                        throw UserError("\(file):\(line): the YAML is indented or nested more than \(maximumBlockDepth) levels deep; a config needs a few levels, check the file")
                    }
                } else {
                    atIndent = false
                }
            }
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            return "line \(mark.line): \(context?.text ?? "") \(problem)".replacingOccurrences(of: "  ", with: " ")
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "invalid YAML"
        }
    }
}

// MARK: - Parser

private struct Parser {
    let file: String
    let baseDirectory: String?

    func fail(_ node: Node?, _ field: String, _ message: String) -> UserError {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return UserError("\(file)\(line): \(field): \(message)")
    }

    /// The entries of a mapping; rejects keys outside `allowed` with the closest valid name.
    func mapping(_ node: Node, _ field: String, allowed: [String]) throws -> [String: Node] {
        guard let map = node.mapping else {
            throw fail(node, field, "expected a mapping of \(allowed.joined(separator: ", "))")
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in map {
            guard let key = keyNode.string else { throw fail(keyNode, field, "keys must be names") }
            let path = field.isEmpty ? key : "\(field).\(key)"
            guard allowed.contains(key) else {
                let hint = closestMatch(key, in: allowed).map { "did you mean '\($0)'?" }
                    ?? "valid keys: \(allowed.joined(separator: ", "))"
                throw fail(keyNode, path, "unknown key '\(key)'; \(hint)")
            }
            guard result[key] == nil else { throw fail(keyNode, path, "given twice; keep one") }
            result[key] = value
        }
        return result
    }

    func scalar(_ node: Node, _ field: String, _ expected: String) throws -> String {
        guard let scalar = node.scalar else { throw fail(node, field, "expected \(expected)") }
        return scalar.string
    }

    /// The text of an unquoted scalar: a quoted one (`units: "16"`) is a
    /// string in YAML, not the number or truth value the field takes.
    func plain(_ node: Node, _ field: String, _ expected: String) throws -> String {
        let text = try scalar(node, field, expected)
        if let style = node.scalar?.style, style == .singleQuoted || style == .doubleQuoted {
            throw fail(node, field, "expected \(expected), got the quoted string '\(text)'; remove the quotes")
        }
        return text
    }

    func int(_ node: Node, _ field: String, minimum: Int) throws -> Int {
        let text = try plain(node, field, "an integer")
        guard let value = Int(text) else { throw fail(node, field, "'\(text)' is not an integer") }
        guard value >= minimum else {
            throw fail(node, field, "must be \(minimum == 1 ? "a positive integer" : "at least \(minimum)") (got \(value))")
        }
        return value
    }

    func number(_ node: Node, _ field: String, _ range: ClosedRange<Double>, openLow: Bool = false, openHigh: Bool = false,
                rule: String) throws -> Double {
        let text = try plain(node, field, "a number")
        guard let value = Double(text), value.isFinite else { throw fail(node, field, "'\(text)' is not a number") }
        let low = openLow ? value > range.lowerBound : value >= range.lowerBound
        let high = openHigh ? value < range.upperBound : value <= range.upperBound
        guard low && high else { throw fail(node, field, "must be \(rule) (got \(text))") }
        return value
    }

    func bool(_ node: Node, _ field: String) throws -> Bool {
        let text = try plain(node, field, "true or false")
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, field, "'\(text)' is not true or false")
        }
    }

    func choice<T>(_ node: Node, _ field: String, _ options: [String], _ make: (String) -> T?) throws -> T {
        let text = try scalar(node, field, "one of \(options.joined(separator: ", "))")
        if let value = make(text) { return value }
        let hint = closestMatch(text, in: options).map { "did you mean '\($0)'? " } ?? ""
        throw fail(node, field, "unknown value '\(text)'; \(hint)choose one of \(options.joined(separator: ", "))")
    }

    func path(_ node: Node, _ field: String) throws -> String {
        let text = try scalar(node, field, "a file path")
        guard !text.isEmpty else { throw fail(node, field, "is empty; give a file path") }
        guard let baseDirectory, !text.hasPrefix("/") else { return text }
        return URL(fileURLWithPath: text, relativeTo: URL(fileURLWithPath: baseDirectory, isDirectory: true))
            .standardizedFileURL.path
    }

    // MARK: Sections

    func config(_ root: Node) throws -> RunConfig {
        let top = try mapping(root, "", allowed: ["data", "model", "loss", "task", "optimizer", "training"])
        func required(_ key: String) throws -> Node {
            guard let node = top[key] else {
                throw fail(root, key, "missing; every config needs data, model and loss (see README.md)")
            }
            return node
        }
        for key in ["data", "model", "loss"] { _ = try required(key) }
        let data = try dataConfig(try required("data"))
        let model = try modelConfig(try required("model"))
        let loss: Loss = try choice(try required("loss"), "loss", Loss.allCases.map(\.rawValue)) { Loss(name: $0) }
        let optimizer = try top["optimizer"].map(optimizerConfig) ?? OptimizerConfig.defaults(.adam)
        let training = try trainingSection(top["training"])

        let outputActivation = model.denseLayers.last?.activation ?? .linear
        let inferredTask: RunConfig.Task = loss.isCrossEntropy
            || [.sigmoid, .softmax, .step, .sign].contains(outputActivation) ? .classification : .regression
        let task: RunConfig.Task = try top["task"].map {
            try choice($0, "task", ["classification", "regression"]) { RunConfig.Task(rawValue: $0) }
        } ?? inferredTask

        let config = RunConfig(data: data, model: model, loss: loss, task: task, optimizer: optimizer, training: training)
        do {
            _ = try config.objective()
        } catch let error as UserError {
            throw fail(top["loss"], "loss", error.message)
        }
        if config.data.classNames != nil, config.task == .regression {
            throw fail(top["data"]?.mapping?["class_names"], "data.class_names", "a regression has no classes to name; remove class_names")
        }
        if let names = config.data.classNames, config.task == .classification {
            let classes = config.outputUnits == 1 ? 2 : config.outputUnits
            guard names.count == classes else {
                throw fail(top["data"]?.mapping?["class_names"], "data.class_names",
                           "\(names.count) names for the \(classes) classes of the output layer; give one name per class")
            }
        }
        if let stopping = config.training.earlyStopping, let problem = config.monitorProblem(stopping.monitor) {
            let node = top["training"]?.mapping?["early_stopping"]
            throw fail(node?.mapping?["monitor"] ?? node, "training.early_stopping.monitor", problem)
        }
        return config
    }

    func dataConfig(_ node: Node) throws -> DataConfig {
        let map = try mapping(node, "data", allowed: ["train", "test", "validation_split", "scale", "class_names"])
        guard let train = map["train"] else { throw fail(node, "data.train", "missing; say where the training data is") }
        return DataConfig(
            train: try source(train, "data.train"),
            test: try map["test"].map { try source($0, "data.test") },
            validationSplit: try map["validation_split"].map {
                try number($0, "data.validation_split", 0...1, openHigh: true, rule: "in [0, 1)")
            } ?? 0,
            scale: try map["scale"].map {
                try choice($0, "data.scale", ["none", "minmax", "standardize"]) { ScaleMethod(rawValue: $0) }
            } ?? .none,
            classNames: try map["class_names"].map(classNames))
    }

    func classNames(_ node: Node) throws -> [String] {
        guard let items = node.sequence, !items.isEmpty else {
            throw fail(node, "data.class_names", "expected a list of names, one per class: [cat, dog]")
        }
        let names = try items.map { try scalar($0, "data.class_names", "a name") }
        if let repeated = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw fail(node, "data.class_names", "'\(repeated)' is given twice; every class needs its own name")
        }
        return names
    }

    func source(_ node: Node, _ field: String) throws -> DataSource {
        let keys = ["format", "path", "label", "images", "labels", "name", "samples", "noise", "seed", "limit"]
        let map = try mapping(node, field, allowed: keys)
        guard let formatNode = map["format"] else { throw fail(node, "\(field).format", "missing; use csv, idx or synthetic") }
        let format = try choice(formatNode, "\(field).format", DataSource.formats) { DataSource.formats.contains($0) ? $0 : nil }
        let needed: [String]
        switch format {
        case "csv": needed = ["path", "label"]
        case "idx": needed = ["images", "labels"]
        default: needed = ["name"]
        }
        let optional = format == "synthetic" ? ["samples", "noise", "seed", "limit"] : ["limit"]
        for (key, value) in map where key != "format" && !needed.contains(key) && !optional.contains(key) {
            throw fail(value, "\(field).\(key)", "not used by format \(format) (it takes \((needed + optional).joined(separator: ", ")))")
        }
        func required(_ key: String) throws -> Node {
            guard let value = map[key] else {
                throw fail(node, "\(field).\(key)", "missing; format \(format) needs \(needed.joined(separator: " and "))")
            }
            return value
        }
        for key in needed { _ = try required(key) }
        let limit = try map["limit"].map { try int($0, "\(field).limit", minimum: 1) }
        switch format {
        case "csv":
            return .csv(path: try path(try required("path"), "\(field).path"),
                        label: try scalar(try required("label"), "\(field).label", "a column name"), limit: limit)
        case "idx":
            return .idx(images: try path(try required("images"), "\(field).images"),
                        labels: try path(try required("labels"), "\(field).labels"), limit: limit)
        default:
            return .synthetic(
                name: try choice(try required("name"), "\(field).name", SyntheticData.names) { SyntheticData.names.contains($0) ? $0 : nil },
                samples: try map["samples"].map { try int($0, "\(field).samples", minimum: 1) } ?? DataSource.defaultSyntheticSamples,
                noise: try map["noise"].map { try number($0, "\(field).noise", 0...1, rule: "in [0, 1]") } ?? 0,
                seed: try map["seed"].map { UInt64(try int($0, "\(field).seed", minimum: 0)) } ?? 0,
                limit: limit)
        }
    }

    func modelConfig(_ node: Node) throws -> ModelConfig {
        let map = try mapping(node, "model", allowed: ["layers"])
        guard let layersNode = map["layers"], let items = layersNode.sequence else {
            throw fail(map["layers"] ?? node, "model.layers", "expected a list of layers, e.g. - dense: {units: 10, activation: softmax}")
        }
        var layers: [LayerSpec] = []
        for (index, item) in items.enumerated() {
            let field = "model.layers[\(index)]"
            let entry = try mapping(item, field, allowed: ["dense", "dropout"])
            guard entry.count == 1, let (kind, body) = entry.first else {
                throw fail(item, field, "each layer is one of dense or dropout, e.g. - dense: {units: 64, activation: relu}")
            }
            layers.append(kind == "dense" ? try dense(body, "\(field).dense") : try dropout(body, "\(field).dropout"))
        }
        guard case .dense = layers.last else {
            throw fail(layersNode, "model.layers", "the last layer must be dense (the output layer)")
        }
        for (index, layer) in layers.enumerated() where index != layers.count - 1 {
            if case .dense(_, let a, _, _, _) = layer, !a.isDifferentiable {
                throw fail(items[index], "model.layers[\(index)].dense.activation",
                           "'\(a.name)' has no useful derivative (it is flat almost everywhere), so backpropagation cannot pass through it; use \(a == .step ? "sigmoid" : "tanh") in hidden layers (step and sign belong only in a single-layer perceptron)")
            }
        }
        return ModelConfig(layers: layers)
    }

    /// `dense: {units, activation, kernel_initializer, l1, l2}`; Keras' defaults
    /// (linear, glorot_uniform, no penalty) for what is left out.
    func dense(_ body: Node, _ f: String) throws -> LayerSpec {
        let m = try mapping(body, f, allowed: ["units", "activation", "kernel_initializer", "l1", "l2"])
        guard let unitsNode = m["units"] else { throw fail(body, "\(f).units", "missing; say how many units the layer has") }
        return .dense(
            units: try int(unitsNode, "\(f).units", minimum: 1),
            activation: try m["activation"].map { try choice($0, "\(f).activation", Activation.names) { Activation(name: $0) } } ?? .linear,
            initializer: try m["kernel_initializer"].map {
                try choice($0, "\(f).kernel_initializer", Initializer.allCases.map(\.rawValue)) { Initializer(rawValue: $0) }
            } ?? .glorotUniform,
            l1: try m["l1"].map { Float(try number($0, "\(f).l1", 0...1e6, rule: "a non-negative number")) } ?? 0,
            l2: try m["l2"].map { Float(try number($0, "\(f).l2", 0...1e6, rule: "a non-negative number")) } ?? 0)
    }

    /// `dropout: {rate}`.
    func dropout(_ body: Node, _ f: String) throws -> LayerSpec {
        let m = try mapping(body, f, allowed: ["rate"])
        guard let rateNode = m["rate"] else { throw fail(body, "\(f).rate", "missing; give the fraction to drop, e.g. 0.2") }
        return .dropout(rate: Float(try number(rateNode, "\(f).rate", 0...1, openHigh: true, rule: "in [0, 1)")))
    }

    func optimizerConfig(_ node: Node) throws -> OptimizerConfig {
        let names = OptimizerConfig.Name.allCases.map(\.rawValue)
        if node.scalar != nil {
            return OptimizerConfig.defaults(try choice(node, "optimizer", names) { OptimizerConfig.Name(rawValue: $0) })
        }
        let common = ["name", "learning_rate", "weight_decay", "schedule"]
        let map = try mapping(node, "optimizer", allowed: common + ["momentum", "nesterov", "rho", "epsilon", "beta_1", "beta_2"])
        guard let nameNode = map["name"] else { throw fail(node, "optimizer.name", "missing; choose one of \(names.joined(separator: ", "))") }
        let name = try choice(nameNode, "optimizer.name", names) { OptimizerConfig.Name(rawValue: $0) }
        let own: [String]
        switch name {
        case .sgd: own = ["momentum", "nesterov"]
        case .rmsprop: own = ["rho", "momentum", "epsilon"]
        case .adam, .adamw: own = ["beta_1", "beta_2", "epsilon"]
        }
        for (key, value) in map where !common.contains(key) && !own.contains(key) {
            throw fail(value, "optimizer.\(key)", "\(name.rawValue) has no '\(key)' (it takes \((common + own).joined(separator: ", ")))")
        }
        var config = OptimizerConfig.defaults(name)
        if let n = map["learning_rate"] {
            config.learningRate = Float(try number(n, "optimizer.learning_rate", 0...1e6, openLow: true, rule: "a positive number"))
        }
        if let n = map["weight_decay"] { config.weightDecay = Float(try number(n, "optimizer.weight_decay", 0...1e6, rule: "a non-negative number")) }
        if let n = map["momentum"] { config.momentum = Float(try number(n, "optimizer.momentum", 0...1, openHigh: true, rule: "in [0, 1)")) }
        if let n = map["nesterov"] { config.nesterov = try bool(n, "optimizer.nesterov") }
        if let n = map["rho"] { config.rho = Float(try number(n, "optimizer.rho", 0...1, openHigh: true, rule: "in [0, 1)")) }
        if let n = map["epsilon"] { config.epsilon = Float(try number(n, "optimizer.epsilon", 0...1, openLow: true, rule: "a small positive number")) }
        if let n = map["beta_1"] { config.beta1 = Float(try number(n, "optimizer.beta_1", 0...1, openHigh: true, rule: "in [0, 1)")) }
        if let n = map["beta_2"] { config.beta2 = Float(try number(n, "optimizer.beta_2", 0...1, openHigh: true, rule: "in [0, 1)")) }
        if let n = map["schedule"] { config.schedule = try schedule(n) }
        return config
    }

    func schedule(_ node: Node) throws -> ScheduleConfig {
        let f = "optimizer.schedule"
        let map = try mapping(node, f, allowed: ["name", "decay_steps", "decay_rate", "alpha", "warmup_steps"])
        var config = ScheduleConfig()
        if let n = map["name"] {
            config.name = try choice(n, "\(f).name", ScheduleConfig.Name.allCases.map(\.rawValue)) { ScheduleConfig.Name(rawValue: $0) }
        }
        if let n = map["decay_steps"] { config.decaySteps = try int(n, "\(f).decay_steps", minimum: 1) }
        if let n = map["decay_rate"] { config.decayRate = Float(try number(n, "\(f).decay_rate", 0...1, openLow: true, rule: "in (0, 1]")) }
        if let n = map["alpha"] { config.alpha = Float(try number(n, "\(f).alpha", 0...1, rule: "in [0, 1]")) }
        if let n = map["warmup_steps"] { config.warmupSteps = try int(n, "\(f).warmup_steps", minimum: 0) }
        return config
    }

    func trainingSection(_ node: Node?) throws -> TrainingSection {
        var section = TrainingSection.defaults
        guard let node else { return section }
        let map = try mapping(node, "training", allowed: ["epochs", "batch_size", "seed", "shuffle", "early_stopping",
                                                              "on_nonfinite", "max_consecutive_skips", "gradient_compression"])
        if let n = map["epochs"] { section.epochs = try int(n, "training.epochs", minimum: 1) }
        if let n = map["batch_size"] { section.batchSize = try int(n, "training.batch_size", minimum: 1) }
        if let n = map["seed"] { section.seed = UInt64(try int(n, "training.seed", minimum: 0)) }
        if let n = map["shuffle"] { section.shuffle = try bool(n, "training.shuffle") }
        if let n = map["early_stopping"] { section.earlyStopping = try earlyStopping(n) }
        if let n = map["on_nonfinite"] {
            section.onNonFinite = try choice(n, "training.on_nonfinite", NonFiniteAction.allCases.map(\.rawValue)) { .init(rawValue: $0) }
        }
        if let n = map["max_consecutive_skips"] {
            section.maxConsecutiveSkips = try int(n, "training.max_consecutive_skips", minimum: 1)
        }
        if let n = map["gradient_compression"] {
            section.gradientCompression = try choice(n, "training.gradient_compression",
                                                     GradientCompressionSetting.allCases.map(\.rawValue)) {
                GradientCompressionSetting(rawValue: $0)
            }.format
        }
        return section
    }

    func earlyStopping(_ node: Node) throws -> EarlyStoppingConfig {
        let f = "training.early_stopping"
        let map = try mapping(node, f, allowed: ["monitor", "patience", "min_delta", "mode", "restore_best_weights", "start_from_epoch"])
        var config = EarlyStoppingConfig()
        if let n = map["monitor"] { config.monitor = try scalar(n, "\(f).monitor", "a metric name") }
        if let n = map["patience"] { config.patience = try int(n, "\(f).patience", minimum: 0) }
        if let n = map["min_delta"] { config.minDelta = try number(n, "\(f).min_delta", 0...1e30, rule: "a non-negative number") }
        if let n = map["mode"] {
            config.mode = try choice(n, "\(f).mode", EarlyStoppingConfig.Mode.allCases.map(\.rawValue)) { .init(rawValue: $0) }
        }
        if let n = map["restore_best_weights"] { config.restoreBestWeights = try bool(n, "\(f).restore_best_weights") }
        if let n = map["start_from_epoch"] { config.startFromEpoch = try int(n, "\(f).start_from_epoch", minimum: 0) }
        return config
    }
}
