// What a run will hold in memory, estimated before anything large is
// allocated, and the memory this host grants: a model or a dataset that
// cannot fit is refused with the figures instead of dying in an allocation.
//
// Every size is computed with overflow reported, so an absurd layer or batch
// from a config file becomes a refusal, never an arithmetic trap.

import Foundation
import NNCore
import NNData

/// The samples and row widths of the data a run will train on, known before
/// or after loading it.
public struct DataShape: Equatable, Sendable {
    /// Samples over every split (training, validation and test together).
    public var samples: Int
    /// Values per feature row (the model's input size).
    public var featureCount: Int
    /// Values per label row.
    public var labelWidth: Int

    public init(samples: Int, featureCount: Int, labelWidth: Int) {
        self.samples = samples
        self.featureCount = featureCount
        self.labelWidth = labelWidth
    }

    /// The shape the config's data will have, read from the files' headers
    /// without loading them (IDX), from a CSV file's header and a scan for
    /// where its records end, or known from the config (synthetic); nil when
    /// a file or its header cannot be read (loading reports why).
    public static func expected(_ config: RunConfig) -> DataShape? {
        var shapes: [DataShape] = []
        for source in [config.data.train] + [config.data.test].compactMap({ $0 }) {
            switch source {
            case .csv(let path, let label, let limit):
                guard let shape = CSVLoader.shape(path: path, label: label, limit: limit) else { return nil }
                shapes.append(DataShape(samples: shape.count, featureCount: shape.featureCount, labelWidth: 1))
            case .idx(let images, _, let limit):
                guard let shape = IDXLoader.shape(images: images, limit: limit) else { return nil }
                shapes.append(DataShape(samples: shape.count, featureCount: shape.featureCount, labelWidth: 1))
            case .synthetic(_, let samples, _, _, let limit):
                shapes.append(DataShape(samples: min(samples, limit ?? samples), featureCount: 2, labelWidth: 1))
            }
        }
        // The training set's width is the model's input; a test set of
        // another width is refused when loaded.
        return DataShape(samples: Count.sum(shapes.map(\.samples)), featureCount: shapes[0].featureCount,
                         labelWidth: 1)
    }

    /// The shape of loaded data.
    public init(_ data: PreparedData) {
        let splits = [data.training] + [data.validation, data.test].compactMap { $0 }
        self.init(samples: splits.reduce(0) { $0 &+ $1.count }, featureCount: data.featureCount,
                  labelWidth: data.training.labelWidth)
    }
}

/// Saturating arithmetic on byte and element counts: a result past Int.max
/// stays at Int.max, which every limit refuses.
enum Count {
    static func multiply(_ values: Int...) -> Int {
        values.reduce(1) { product, value in
            let (result, overflow) = product.multipliedReportingOverflow(by: max(value, 0))
            return overflow ? Int.max : result
        }
    }

    static func add(_ values: Int...) -> Int { sum(values) }

    static func sum(_ values: [Int]) -> Int {
        values.reduce(0) { total, value in
            let (result, overflow) = total.addingReportingOverflow(max(value, 0))
            return overflow ? Int.max : result
        }
    }
}

/// The memory one rank of a run needs, by part, in bytes.
public struct MemoryEstimate: Equatable, Sendable {
    /// Parameters, as Float32.
    public var parameters: Int
    /// The flat gradient buffer (as large as the parameters).
    public var gradients: Int
    /// The optimizer's slots (0, 1 or 2 copies of the parameters).
    public var optimizerState: Int
    /// Per-layer outputs and input gradients, the loss head's workspaces and
    /// the batch's input and target rows, at the rows one rank processes at once.
    public var activations: Int
    /// Every split's features and labels, as Float32.
    public var dataset: Int
    /// The labels alone (part of `dataset`): what each rank still holds of
    /// a dataset mapped from the cache.
    public var labels: Int
    /// Rank 0 only, while it writes a checkpoint: the host copy of the
    /// parameters and optimizer slots, the tensors made from it and the encoded file.
    public var checkpointCopies: Int
    /// The number of parameters.
    public var parameterCount: Int

    public init(parameters: Int, gradients: Int, optimizerState: Int, activations: Int, dataset: Int, labels: Int = 0,
                checkpointCopies: Int, parameterCount: Int) {
        self.labels = labels
        self.parameters = parameters
        self.gradients = gradients
        self.optimizerState = optimizerState
        self.activations = activations
        self.dataset = dataset
        self.checkpointCopies = checkpointCopies
        self.parameterCount = parameterCount
    }

    /// The sum of the parts (rank 0's, with the checkpoint copies).
    public var total: Int { Count.add(parameters, gradients, optimizerState, activations, dataset, checkpointCopies) }

    /// The parts as a person reads them: `parameters 3.0 GiB + gradients 3.0 GiB + …`,
    /// with the per-rank parts times `ranks` and rank 0's checkpoint copies when counted.
    func parts(ranks: Int, checkpoint: Bool, model: Bool = true, dataset includeDataset: Bool = true,
               datasetShared: Bool = false, labelsOnly: Bool = false) -> String {
        func part(_ name: String, _ bytes: Int) -> String { "\(name) \(ByteCount.format(bytes))" }
        var perRank = model ? [part("parameters", parameters), part("gradients", gradients),
                               part("optimizer state", optimizerState), part("activations", activations)] : []
        if includeDataset && !datasetShared { perRank.append(part("dataset", dataset)) }
        if labelsOnly { perRank.append(part("labels", labels)) }
        var text = perRank.joined(separator: " + ")
        if ranks > 1 { text = "(\(text)) × \(ranks) ranks on this host" }
        if includeDataset && datasetShared {
            text += (text.isEmpty ? "" : " + ") + part("dataset", dataset) + (ranks > 1 ? " shared by them" : "")
        }
        if checkpoint { text += (text.isEmpty ? "" : " + ") + part("checkpoint copies", checkpointCopies) }
        return text
    }
}

/// Estimating a run's memory and comparing it with what the host grants.
public enum MemoryBudget {
    /// The parameter count of `layers` after `inputSize` inputs, or nil when it overflows Int.
    public static func parameterCount(inputSize: Int, layers: [LayerSpec]) -> Int? {
        var width = inputSize, total = 0
        for case .dense(let units, _, _, _, _) in layers {
            let (weights, overflow) = units.multipliedReportingOverflow(by: width)
            let (withBias, overflow2) = weights.addingReportingOverflow(units)
            let (sum, overflow3) = total.addingReportingOverflow(withBias)
            if overflow || overflow2 || overflow3 { return nil }
            total = sum
            width = units
        }
        return total
    }

    /// The memory one rank of `config` needs with `shape`'s data on `worldSize` ranks.
    public static func estimate(_ config: RunConfig, shape: DataShape, worldSize: Int) throws -> MemoryEstimate {
        let objective = try config.objective()
        let float = MemoryLayout<Float>.stride
        let parameterCount = parameterCount(inputSize: shape.featureCount, layers: config.layerSpecs) ?? Int.max
        let slots = config.optimizer.rule.slots.count
        // The trainer's batch tensors hold max(local batch + 1, 1024) rows
        // (evaluation goes in chunks of that many), and the layers' workspaces grow to the same.
        let rows = max(config.training.batchSize / max(worldSize, 1) + 1, 1024)
        var widths: [Int] = []
        var width = shape.featureCount
        for spec in config.layerSpecs {
            switch spec {
            case .dense(let units, _, _, _, _):
                widths.append(Count.add(units, width))  // output + input gradient
                width = units
            case .dropout:
                widths.append(Count.multiply(2, width))  // mask + output
            }
        }
        widths.append(Count.multiply(2, objective.outputs))      // probabilities + output gradient
        widths.append(Count.add(shape.featureCount, objective.targetWidth))  // the batch's inputs and targets
        let activations = Count.multiply(rows, Count.sum(widths), float)
        let dataset = Count.multiply(shape.samples, Count.add(shape.featureCount, shape.labelWidth), float)
        let parameterBytes = Count.multiply(parameterCount, float)
        return MemoryEstimate(parameters: parameterBytes, gradients: parameterBytes,
                              optimizerState: Count.multiply(slots, parameterBytes),
                              activations: activations, dataset: dataset,
                              labels: Count.multiply(shape.samples, shape.labelWidth, float),
                              checkpointCopies: Count.multiply(3, 1 + slots, parameterBytes),
                              parameterCount: parameterCount)
    }

    /// Refuses a run whose `ranksOnHost` ranks together need more than `limit`.
    /// - Parameters:
    ///   - datasetLoaded: the data is already in memory (it was loaded before
    ///     its size could be known, as for CSV): it no longer counts against `limit`.
    ///   - modelOnDevice: parameters, gradients, optimizer state and
    ///     activations live in a GPU's memory, not in `limit`.
    ///   - writesCheckpoints: this rank (rank 0) also holds the checkpoint copies.
    ///   - datasetShared: the ranks on the host share one copy (a cache
    ///     file written from the loaded data): it counts once.
    ///   - datasetMapped: the ranks map a cache file written without loading
    ///     the data: the kernel pages its rows in and out as needed, so it
    ///     does not count at all (a dataset larger than `limit` trains, reading from disk).
    ///   - note: said in the refusal after the figures (why the data is not shared).
    public static func check(_ estimate: MemoryEstimate, ranksOnHost: Int, limit: HostMemory.Limit,
                             datasetLoaded: Bool = false, datasetShared: Bool = false, datasetMapped: Bool = false,
                             modelOnDevice: Bool = false, writesCheckpoints: Bool = true, note extra: String? = nil) throws {
        let model = Count.add(estimate.parameters, estimate.gradients, estimate.optimizerState, estimate.activations)
        let dataset = datasetLoaded ? 0 : datasetMapped ? estimate.labels : estimate.dataset
        let perRank = Count.add(modelOnDevice ? 0 : model, datasetShared ? 0 : dataset)
        let needed = Count.add(Count.multiply(perRank, max(ranksOnHost, 1)), datasetShared ? dataset : 0,
                               writesCheckpoints ? estimate.checkpointCopies : 0)
        guard needed > limit.bytes else { return }
        var notes: [String] = []
        if datasetLoaded { notes.append("the dataset is already loaded and not counted") }
        if datasetMapped { notes.append("the dataset's rows are mapped from the data cache and not counted") }
        if let extra { notes.append(extra) }
        if modelOnDevice { notes.append("the model's parts live on the GPU and are not counted") }
        let note = notes.isEmpty ? "" : "; " + notes.joined(separator: ", ")
        throw UserError("memory: the run needs about \(ByteCount.format(needed)) (\(estimate.parts(ranks: ranksOnHost, checkpoint: writesCheckpoints, model: !modelOnDevice, dataset: !datasetLoaded && !datasetMapped, datasetShared: datasetShared, labelsOnly: !datasetLoaded && datasetMapped))\(note); \(estimate.parameterCount == Int.max ? "more than \(Int.max)" : String(estimate.parameterCount)) parameters) but \(limit.source) allows \(ByteCount.format(limit.bytes)); use fewer or smaller layers, a smaller batch_size, a data limit, or fewer ranks per host")
    }
}

/// The memory this process may use on its host.
public enum HostMemory {
    /// A limit and where it comes from (`cgroup memory.max`, `MemAvailable`, …).
    public struct Limit: Equatable, Sendable {
        public var bytes: Int
        public var source: String
        public init(bytes: Int, source: String) {
            self.bytes = bytes
            self.source = source
        }
    }

    /// The smaller of this process's cgroup limit (v2 `memory.max`, else v1
    /// `memory.limit_in_bytes`, the nearest limited cgroup up the hierarchy)
    /// and the host's `MemAvailable`; nil when neither can be read.
    public static func limit() -> Limit? {
        let limits = [cgroupLimit(), memAvailable()].compactMap { $0 }
        return limits.min { $0.bytes < $1.bytes }
    }

    /// `MemAvailable` from /proc/meminfo.
    static func memAvailable() -> Limit? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return Limit(bytes: Count.multiply(kilobytes, 1024), source: "the host's available memory (MemAvailable)")
        }
        return nil
    }

    /// The cgroup's memory limit, or nil when there is none (or it is unreadable).
    static func cgroupLimit() -> Limit? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        var found: [Limit] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                found += limits(under: "/sys/fs/cgroup", path: path, file: "memory.max", name: "cgroup memory.max")
                found += limits(under: "/sys/fs/cgroup/unified", path: path, file: "memory.max", name: "cgroup memory.max")
            } else if fields[1].split(separator: ",").contains("memory") {
                found += limits(under: "/sys/fs/cgroup/memory", path: path, file: "memory.limit_in_bytes",
                                name: "cgroup memory.limit_in_bytes")
            }
        }
        return found.min { $0.bytes < $1.bytes }
    }

    /// The limits in `file` of the cgroup at `path` and its ancestors under
    /// `root`; a container mounts its own cgroup as the root, so the root's
    /// file is read too.
    static func limits(under root: String, path: String, file: String, name: String) -> [Limit] {
        var components = path.split(separator: "/").map(String.init)
        var result: [Limit] = []
        while true {
            let directory = ([root] + components).joined(separator: "/")
            if let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8),
               let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)),
               bytes < 1 << 62 {  // v1 writes "no limit" as about 2⁶³
                result.append(Limit(bytes: bytes, source: "the \(name) of \(directory)"))
            }
            if components.isEmpty { break }
            components.removeLast()
        }
        return result
    }
}

/// Byte counts for messages.
public enum ByteCount {
    /// `512 B`, `64.0 KiB`, `3.2 GiB`; Int.max (an overflowed count) as `more than 8 EiB`.
    public static func format(_ bytes: Int) -> String {
        if bytes == Int.max { return "more than 8 EiB" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
    }

    /// Parses `8G`, `512M`, `1.5GiB`, `1000000` (bytes); nil for anything else.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let suffixes: [(String, Double)] = [("TIB", 0x1p40), ("GIB", 0x1p30), ("MIB", 0x1p20), ("KIB", 0x1p10),
                                            ("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10), ("B", 1), ("", 1)]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count)), number >= 0, number * scale < 0x1p62 else { return nil }
            return Int(number * scale)
        }
        return nil
    }
}

/// Bounds that keep the trainer's counters in range: sample indices are
/// Int32, and the step count of the whole run must fit an Int.
public enum TrainingLimits {
    /// Refuses a batch size, sample count or number of epochs the trainer cannot count.
    public static func check(_ config: RunConfig, trainingSamples: Int) throws {
        let batch = config.training.batchSize, most = Int(Int32.max)
        guard batch <= most else {
            throw UserError("training.batch_size: \(batch) is more than the \(most) samples a batch can hold; use a smaller batch_size")
        }
        guard trainingSamples <= most else {
            throw UserError("data: \(trainingSamples) samples are more than the \(most) a run can index; set a limit on the data")
        }
        let steps = (trainingSamples + batch - 1) / max(batch, 1)
        let (_, overflow) = config.training.epochs.multipliedReportingOverflow(by: max(steps, 1))
        guard !overflow else {
            throw UserError("training.epochs: \(config.training.epochs) epochs of \(steps) steps are more steps than can be counted; use fewer epochs")
        }
    }
}
