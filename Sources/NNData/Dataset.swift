// An in-memory dataset: feature rows and label rows as flat Float arrays, plus
// enough about where each sample came from to point at it in an error message.
//
// N = samples, F = featureCount, L = labelWidth.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A set of samples held in memory, row-major.
///
/// For classification a label is the class index stored as a Float
/// (`labelWidth` 1); for regression it is the target values.
public struct Dataset: Sendable {
    /// Where the samples came from: a path, or e.g. `synthetic spiral`.
    public var name: String
    /// features: (N, F), row-major; held in memory, or mapped from a dataset
    /// cache file that the ranks on a host share.
    public var features: FloatRows
    /// F: the width of one feature row.
    public var featureCount: Int
    /// labels: (N, L), row-major; empty with `labelWidth` 0 for unlabeled data.
    public var labels: [Float]
    /// L: the width of one label row.
    public var labelWidth: Int
    /// Class names, index-aligned, when the labels were names in a CSV file.
    public var classNames: [String]?
    /// The feature columns' names, in row order, when the file had a header (CSV).
    public var featureNames: [String]?

    /// How `location(ofSample:)` names a sample.
    var origin: Origin
    /// The index that sample 0 of this dataset had in the dataset it was cut
    /// from (by `split` or `prefix`), so locations stay those of the source.
    var originOffset: Int = 0

    /// The number of samples.
    public var count: Int {
        if featureCount > 0 { return features.count / featureCount }
        if labelWidth > 0 { return labels.count / labelWidth }
        return 0
    }

    /// Creates a dataset from rows already in memory; `location(ofSample:)`
    /// then reads `NAME sample I`.
    public init(name: String, features: [Float], featureCount: Int, labels: [Float], labelWidth: Int,
                classNames: [String]? = nil) {
        precondition(featureCount >= 0 && labelWidth >= 0, "negative row width")
        precondition(featureCount == 0 ? features.isEmpty : features.count % featureCount == 0,
                     "features.count is not a multiple of featureCount")
        precondition(labelWidth == 0 ? labels.isEmpty : labels.count % labelWidth == 0,
                     "labels.count is not a multiple of labelWidth")
        precondition(featureCount == 0 || labelWidth == 0
                     || features.count / featureCount == labels.count / labelWidth,
                     "features and labels hold different numbers of rows")
        self.init(name: name, features: features, featureCount: featureCount, labels: labels,
                  labelWidth: labelWidth, classNames: classNames, origin: .memory)
    }

    /// The loaders' initializer: like the public one, with an origin.
    init(name: String, features: [Float], featureCount: Int, labels: [Float], labelWidth: Int,
         classNames: [String]?, origin: Origin) {
        self.init(name: name, rows: FloatRows(features), featureCount: featureCount, labels: labels, labelWidth: labelWidth,
                  classNames: classNames, origin: origin)
    }

    /// The designated initializer, over rows held or mapped.
    init(name: String, rows features: FloatRows, featureCount: Int, labels: [Float], labelWidth: Int,
         classNames: [String]?, origin: Origin) {
        self.name = name
        self.features = features
        self.featureCount = featureCount
        self.labels = labels
        self.labelWidth = labelWidth
        self.classNames = classNames
        self.origin = origin
    }

    // MARK: - Locations

    /// Where a dataset's samples came from.
    enum Origin: Sendable, Codable {
        /// A CSV file: sample i sits on `lines[i]` when rows are not one per
        /// line from `firstLine` on (blank lines, quoted line breaks), else on
        /// `firstLine + i`. Lines are 1-based; the header is line 1.
        case csv(path: String, firstLine: Int, lines: [Int32]?)
        /// An IDX pair: sample i is item i (0-based) of the labels file.
        case idx(labelsPath: String)
        /// Generated or assembled in memory: `name sample i`.
        case memory

        /// The CSV origin of rows starting on `lines`: the lines themselves
        /// only when they are not consecutive.
        static func csv(path: String, lines: ArraySlice<Int32>) -> Origin {
            let first = Int(lines.first ?? 2)
            let contiguous = zip(lines, first...).allSatisfy { Int($0) == $1 }
            return .csv(path: path, firstLine: first, lines: contiguous ? nil : Array(lines))
        }
    }

    /// Names sample `i` for an error message: `path:LINE` for CSV (header is
    /// line 1), `labels-path item I` for IDX (0-based, as the format counts),
    /// `NAME sample I` otherwise (e.g. `synthetic xor sample 7`).
    public func location(ofSample i: Int) -> String {
        let source = i + originOffset
        switch origin {
        case .csv(let path, let firstLine, let lines):
            if let lines, source >= 0, source < lines.count { return "\(path):\(lines[source])" }
            return "\(path):\(firstLine + source)"
        case .idx(let labelsPath):
            return "\(labelsPath) item \(source)"
        case .memory:
            return "\(name) sample \(source)"
        }
    }

    // MARK: - Slicing

    /// The samples `range`, keeping names, class names and locations.
    func slice(_ range: Range<Int>) -> Dataset {
        var result = self
        result.features = features.rows(range.lowerBound * featureCount..<range.upperBound * featureCount)
        result.labels = Array(labels[range.lowerBound * labelWidth..<range.upperBound * labelWidth])
        result.originOffset = originOffset + range.lowerBound
        return result
    }

    /// Splits off the last `validationFraction` of the samples, in file order,
    /// as validation data, like Keras' `validation_split`. The validation
    /// count is ⌊count · fraction⌋ (so a tiny set may get none); the fraction
    /// must be in [0, 1) (the config checks it).
    public func split(validationFraction: Double) -> (training: Dataset, validation: Dataset) {
        let cut = count - validationCount(fraction: validationFraction)
        return (slice(0..<cut), slice(cut..<count))
    }

    /// ⌊count · fraction⌋ validation samples.
    private func validationCount(fraction: Double) -> Int { Self.validationCount(of: count, fraction: fraction) }

    /// ⌊count · fraction⌋: how many of `count` samples `split` and
    /// `splitOffValidation` give the validation part.
    public static func validationCount(of count: Int, fraction: Double) -> Int {
        precondition(fraction >= 0 && fraction < 1, "validation fraction \(fraction) is outside [0, 1)")
        // The epsilon keeps e.g. 100 · 0.29 = 28.999999999999996 at 29.
        return min(count, Int((Double(count) * fraction + 1e-9).rounded(.down)))
    }

    /// Like `split(validationFraction:)`, but keeps the training part in
    /// place: only the validation tail is copied, so splitting a large set
    /// does not hold two copies of it in memory.
    public mutating func splitOffValidation(fraction: Double) -> Dataset {
        let validationCount = validationCount(fraction: fraction)
        let cut = count - validationCount
        let validation = slice(cut..<count)
        features.removeLast(validationCount * featureCount)
        labels.removeLast(validationCount * labelWidth)
        return validation
    }

    /// The first `n` samples (all of them when `n` ≥ `count`); a CSV
    /// origin keeps only the lines of those samples.
    public func prefix(_ n: Int) -> Dataset {
        precondition(n >= 0, "prefix of a negative count")
        var result = slice(0..<min(n, count))
        if case .csv(let path, _, let lines?) = origin {
            result.origin = .csv(path: path, lines: lines.prefix(originOffset + result.count))
        }
        return result
    }

    // MARK: - Batches

    /// Copies the rows `indices` contiguously into `features` (room for
    /// indices.count · F floats) and `labels` (indices.count · L floats).
    /// Indices must be valid sample indices; they are checked in debug builds only.
    public func gather(indices: UnsafeBufferPointer<Int32>, features destinationFeatures: UnsafeMutablePointer<Float>,
                       labels destinationLabels: UnsafeMutablePointer<Float>) {
        let n = count, f = featureCount, l = labelWidth
        features.withUnsafeBufferPointer { source in
            guard f > 0, let base = source.baseAddress else { return }
            var destination = destinationFeatures
            for index in indices {
                assert(index >= 0 && Int(index) < n, "sample index \(index) outside 0..<\(n)")
                memcpy(destination, base + Int(index) * f, f * MemoryLayout<Float>.stride)
                destination += f
            }
        }
        labels.withUnsafeBufferPointer { source in
            guard l > 0, let base = source.baseAddress else { return }
            var destination = destinationLabels
            if l == 1 {
                for index in indices {
                    destination.pointee = base[Int(index)]
                    destination += 1
                }
            } else {
                for index in indices {
                    memcpy(destination, base + Int(index) * l, l * MemoryLayout<Float>.stride)
                    destination += l
                }
            }
        }
    }
}
