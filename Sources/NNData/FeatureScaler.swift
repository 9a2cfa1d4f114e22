// Per-feature affine scaling, x' = (x − offset) · factor, fitted on the
// training split only and saved with the model so prediction scales the same way.
//
// N = samples, F = features.

/// How features are scaled before training.
public enum ScaleMethod: String, Codable, Sendable {
    /// Leave features as they are.
    case none
    /// Map each feature's training range [min, max] to [0, 1].
    case minmax
    /// Subtract each feature's mean and divide by its population standard deviation.
    case standardize
}

/// Per-feature offsets and factors: x' = (x − offset) · factor.
public struct FeatureScaler: Sendable, Codable, Equatable {
    /// The method the statistics were computed for.
    public var method: ScaleMethod
    /// offsets: (F).
    public var offsets: [Float]
    /// factors: (F).
    public var factors: [Float]

    /// Restores a scaler saved with a model.
    public init(method: ScaleMethod, offsets: [Float], factors: [Float]) {
        precondition(offsets.count == factors.count, "offsets and factors differ in length")
        self.method = method
        self.offsets = offsets
        self.factors = factors
    }

    /// Fits a scaler on `dataset` (the training set only), with statistics in
    /// Double: minmax → offset min, factor 1/(max − min); standardize →
    /// offset mean, factor 1/std (population); none → offset 0, factor 1.
    /// A constant feature (or an empty set) gets factor 1.
    public init(fitting dataset: Dataset, method: ScaleMethod) {
        var statistics = FeatureStatistics(method: method, featureCount: dataset.featureCount)
        dataset.features.withUnsafeBufferPointer { rows in
            statistics.add(rows)
            if statistics.needsDeviations {
                statistics.endFirstPass()
                statistics.addDeviations(rows)
            }
        }
        self = statistics.scaler()
    }

    /// Scales the features of `dataset` in place; labels are never touched.
    /// A `.none` scaler leaves everything as it is (its arrays may be empty).
    public func apply(to dataset: inout Dataset) {
        guard method != .none else { return }
        precondition(offsets.count == dataset.featureCount, "scaler fitted on \(offsets.count) features applied to \(dataset.featureCount)")
        dataset.features.withUnsafeMutableBufferPointer { apply(toRows: $0) }
    }

    /// Scales whole feature rows in place (a chunk of a split).
    public func apply(toRows x: UnsafeMutableBufferPointer<Float>) {
        let f = offsets.count
        guard method != .none, f > 0 else { return }
        offsets.withUnsafeBufferPointer { offset in
            factors.withUnsafeBufferPointer { factor in
                var row = 0
                while row < x.count {
                    for j in 0..<f { x[row + j] = (x[row + j] - offset[j]) * factor[j] }
                    row += f
                }
            }
        }
    }

    /// Scales one feature row in place (prediction time).
    public func apply(toRow row: UnsafeMutableBufferPointer<Float>) {
        guard method != .none else { return }
        precondition(row.count == offsets.count, "scaler fitted on \(offsets.count) features applied to a row of \(row.count)")
        for j in 0..<row.count { row[j] = (row[j] - offsets[j]) * factors[j] }
    }
}

/// The statistics a scaler is fitted from, gathered over rows that arrive in
/// chunks (in file order), so data that is not in memory at once can be
/// fitted: one pass of `add` for every method, then for `standardize` a
/// second pass of `addDeviations` over the same rows after `endFirstPass`.
/// The result is bit for bit the one of fitting all rows at once.
public struct FeatureStatistics: Sendable {
    public let method: ScaleMethod
    public let featureCount: Int
    private var rows = 0
    /// minmax: the lows and highs; standardize: the sums, then the means.
    private var low: [Double], high: [Double]
    private var squares: [Double]

    public init(method: ScaleMethod, featureCount: Int) {
        self.method = method
        self.featureCount = featureCount
        low = [Double](repeating: 0, count: featureCount)
        high = low
        squares = low
    }

    /// Whether a second pass (`addDeviations`) is needed.
    public var needsDeviations: Bool { method == .standardize && rows > 0 && featureCount > 0 }

    /// First pass: rows of `featureCount` values.
    public mutating func add(_ values: UnsafeBufferPointer<Float>) {
        let f = featureCount
        guard f > 0, method != .none else { return }
        let n = values.count / f
        for i in 0..<n {
            let row = i * f
            switch method {
            case .none:
                break
            case .minmax:
                if rows + i == 0 {
                    for j in 0..<f { low[j] = Double(values[j]); high[j] = low[j] }
                    continue
                }
                for j in 0..<f {
                    let v = Double(values[row + j])
                    if v < low[j] { low[j] = v }
                    if v > high[j] { high[j] = v }
                }
            case .standardize:
                for j in 0..<f { low[j] += Double(values[row + j]) }
            }
        }
        rows += n
    }

    /// Between the passes of `standardize`: the sums become means.
    public mutating func endFirstPass() {
        guard method == .standardize, rows > 0 else { return }
        low = low.map { $0 / Double(rows) }
    }

    /// Second pass (standardize): the same rows again. Deviations from the
    /// mean avoid the cancellation of Σx² − n·mean².
    public mutating func addDeviations(_ values: UnsafeBufferPointer<Float>) {
        let f = featureCount
        guard f > 0 else { return }
        for i in 0..<values.count / f {
            for j in 0..<f {
                let d = Double(values[i * f + j]) - low[j]
                squares[j] += d * d
            }
        }
    }

    /// The scaler the statistics give (factor 1 for a constant feature or no rows).
    public func scaler() -> FeatureScaler {
        var offsets = [Double](repeating: 0, count: featureCount)
        var factors = [Double](repeating: 1, count: featureCount)
        if rows > 0 {
            for j in 0..<featureCount {
                switch method {
                case .none:
                    break
                case .minmax:
                    offsets[j] = low[j]
                    factors[j] = high[j] > low[j] ? 1 / (high[j] - low[j]) : 1
                case .standardize:
                    let deviation = (squares[j] / Double(rows)).squareRoot()
                    offsets[j] = low[j]
                    factors[j] = deviation > 0 ? 1 / deviation : 1
                }
            }
        }
        return FeatureScaler(method: method, offsets: offsets.map(Float.init), factors: factors.map(Float.init))
    }
}
