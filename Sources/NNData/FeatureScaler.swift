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
        let n = dataset.count, f = dataset.featureCount
        var offsets = [Double](repeating: 0, count: f)
        var factors = [Double](repeating: 1, count: f)
        if n > 0 && f > 0 {
            dataset.features.withUnsafeBufferPointer { x in
                switch method {
                case .none:
                    break
                case .minmax:
                    var low = Array(x[0..<f]).map(Double.init), high = low
                    for i in 1..<n {
                        let row = i * f
                        for j in 0..<f {
                            let v = Double(x[row + j])
                            if v < low[j] { low[j] = v }
                            if v > high[j] { high[j] = v }
                        }
                    }
                    for j in 0..<f {
                        offsets[j] = low[j]
                        factors[j] = high[j] > low[j] ? 1 / (high[j] - low[j]) : 1
                    }
                case .standardize:
                    var sum = [Double](repeating: 0, count: f)
                    for i in 0..<n { for j in 0..<f { sum[j] += Double(x[i * f + j]) } }
                    let mean = sum.map { $0 / Double(n) }
                    // Second pass over deviations: no cancellation from Σx² − n·mean².
                    var squares = [Double](repeating: 0, count: f)
                    for i in 0..<n {
                        for j in 0..<f {
                            let d = Double(x[i * f + j]) - mean[j]
                            squares[j] += d * d
                        }
                    }
                    for j in 0..<f {
                        let deviation = (squares[j] / Double(n)).squareRoot()
                        offsets[j] = mean[j]
                        factors[j] = deviation > 0 ? 1 / deviation : 1
                    }
                }
            }
        }
        self.init(method: method, offsets: offsets.map(Float.init), factors: factors.map(Float.init))
    }

    /// Scales the features of `dataset` in place; labels are never touched.
    /// A `.none` scaler leaves everything as it is (its arrays may be empty).
    public func apply(to dataset: inout Dataset) {
        guard method != .none else { return }
        let f = dataset.featureCount
        precondition(offsets.count == f, "scaler fitted on \(offsets.count) features applied to \(f)")
        guard f > 0 else { return }
        offsets.withUnsafeBufferPointer { offset in
            factors.withUnsafeBufferPointer { factor in
                dataset.features.withUnsafeMutableBufferPointer { x in
                    var row = 0
                    while row < x.count {
                        for j in 0..<f { x[row + j] = (x[row + j] - offset[j]) * factor[j] }
                        row += f
                    }
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
