// Whether two classes of points can be split by a hyperplane: the question a
// single perceptron's training answers by converging or not.
//
// Two finite sets P and N are strictly linearly separable — some (w, b) has
// w·x + b ≥ 1 on P and ≤ −1 on N, i.e. y_i (w·x_i + b) ≥ 1 for all i — exactly
// when their convex hulls are disjoint. This is Farkas' lemma applied to that
// system: it is infeasible iff some λ ≥ 0, λ ≠ 0, has Σ λ_i y_i x_i = 0 and
// Σ λ_i y_i = 0, and normalizing λ over each class gives a point
//
//     Σ_{i∈P} α_i x_i = Σ_{j∈N} β_j x_j,   α, β ≥ 0,   Σ α = Σ β = 1
//
// that lies in both hulls. A hyperplane would have to put that point on both
// of its sides, so such a point is a certificate that no perceptron can
// classify every sample. The test below decides whether the second system
// (F + 2 equations, one unknown per sample) has a solution, with a Phase-I
// simplex method. When it has none, the method's final duals certify that,
// and they spell out a separating hyperplane. Either answer is checked
// against the original values before it is given.
//
// N = samples, F = features.

/// The exact test for linear separability of two classes.
public enum LinearSeparability {
    /// The largest problem the test takes on: samples × (features + 2) ≤ this
    /// (the simplex tableau's size, in Doubles, about 2 MB). Beyond it the
    /// test answers nil rather than hold up training.
    public static let maximumEntries = 250_000

    /// The answer for one set of points.
    public enum Verdict: Equatable, Sendable {
        /// Some hyperplane puts every sample of each class strictly on its own
        /// side (also when a class has no samples).
        case separable
        /// No hyperplane does: `commonPoint` (F values) is a convex
        /// combination of positive samples and also one of negative samples,
        /// checked to within 10⁻⁶ of the features' largest magnitude.
        case notSeparable(commonPoint: [Double])
    }

    /// Tests the classes `positive[i]` (true) and not, of the rows of
    /// `features` (N × F, row-major).
    ///
    /// - Returns: nil when the problem is larger than `maximumEntries`, when
    ///   a feature is not finite, or when the floating-point solution could
    ///   not be confirmed (the simplex method ran past its pivot limit, or
    ///   the certificate it found does not check out). Either verdict is
    ///   checked on the original values: `notSeparable` by its common point,
    ///   `separable` by the hyperplane that the simplex method's duals describe.
    public static func test(features: [Float], featureCount: Int, positive: [Bool]) -> Verdict? {
        let n = positive.count, f = featureCount
        precondition(f >= 0 && features.count == n * f, "features must hold positive.count rows of featureCount values")
        guard n * (f + 2) <= maximumEntries else { return nil }
        guard positive.contains(true), positive.contains(false) else { return .separable }

        guard features.allSatisfy(\.isFinite) else { return nil }
        // Each feature is divided by its largest magnitude, so that the
        // tableau's entries lie in [−1, 1] and one tolerance fits every data set.
        var scale = [Double](repeating: 0, count: f)
        for i in 0..<n {
            for j in 0..<f { scale[j] = max(scale[j], abs(Double(features[i * f + j]))) }
        }
        for j in 0..<f where scale[j] == 0 { scale[j] = 1 }

        // Rows 0..<F: Σ α_i x_i − Σ β_j x_j = 0; row F: Σ α = 1; row F+1: Σ β = 1.
        // Column i belongs to sample i (α_i or β_i).
        let rows = f + 2
        var problem = FeasibilityProblem(rows: rows, columns: n)
        for i in 0..<n {
            let sign: Double = positive[i] ? 1 : -1
            for j in 0..<f { problem[j, i] = sign * Double(features[i * f + j]) / scale[j] }
            problem[positive[i] ? f : f + 1, i] = 1
        }
        problem.right[f] = 1
        problem.right[f + 1] = 1

        switch problem.solve() {
        case nil:
            return nil
        case .infeasible(let certificate)?:
            return separated(by: certificate, features: features, featureCount: f, positive: positive, scale: scale)
        case .feasible(let weights)?:
            return confirmed(weights, features: features, featureCount: f, positive: positive, scale: scale)
        }
    }

    /// Tests a dataset whose first label column names two classes: label > 0
    /// is the positive class (class 1 of 0/1 labels).
    public static func test(_ dataset: Dataset) -> Verdict? {
        let width = dataset.labelWidth
        guard width > 0 else { return nil }
        guard dataset.count * (dataset.featureCount + 2) <= maximumEntries else { return nil }
        let positive = (0..<dataset.count).map { dataset.labels[$0 * width] > 0 }
        return test(features: Array(dataset.features), featureCount: dataset.featureCount, positive: positive)
    }

    /// Turns the certificate y of "no point in both hulls" into the
    /// hyperplane it describes and returns `.separable` only if that
    /// hyperplane splits the original samples. From yᵀA ≤ 0 column by column,
    /// w_j = −y_j / scale_j has w·x ≥ y_F on every positive sample and
    /// w·x ≤ −y_(F+1) on every negative one, and yᵀb = y_F + y_(F+1) > 0.
    private static func separated(by y: [Double], features: [Float], featureCount f: Int, positive: [Bool],
                                  scale: [Double]) -> Verdict? {
        let w = (0..<f).map { -y[$0] / scale[$0] }
        var lowestPositive = Double.infinity, highestNegative = -Double.infinity
        for i in positive.indices {
            var z = 0.0
            for j in 0..<f { z += w[j] * Double(features[i * f + j]) }
            if positive[i] { lowestPositive = min(lowestPositive, z) } else { highestNegative = max(highestNegative, z) }
        }
        // Each w_j·x_j is at most |y_j| in magnitude; the gap must stand out from their rounding.
        let size = y.prefix(f).reduce(0) { $0 + abs($1) }
        return lowestPositive - highestNegative > 1e-12 * max(size, 1) ? .separable : nil
    }

    /// Recomputes both convex combinations from the original values and
    /// returns the verdict only if they agree.
    private static func confirmed(_ weights: [Double], features: [Float], featureCount f: Int, positive: [Bool],
                                  scale: [Double]) -> Verdict? {
        var inPositive = [Double](repeating: 0, count: f), inNegative = inPositive
        var positiveSum = 0.0, negativeSum = 0.0
        for (i, weight) in weights.enumerated() where weight != 0 {
            guard weight > -1e-9 else { return nil }
            if positive[i] { positiveSum += weight } else { negativeSum += weight }
            for j in 0..<f {
                let value = weight * Double(features[i * f + j])
                if positive[i] { inPositive[j] += value } else { inNegative[j] += value }
            }
        }
        guard abs(positiveSum - 1) <= 1e-7, abs(negativeSum - 1) <= 1e-7 else { return nil }
        for j in 0..<f where abs(inPositive[j] - inNegative[j]) > 1e-6 * scale[j] { return nil }
        return .notSeparable(commonPoint: inPositive)
    }
}

/// Whether A·x = b has a solution x ≥ 0 (b ≥ 0), decided by the first phase
/// of the simplex method: minimize the sum of one artificial variable per
/// row, starting from the basis of artificials; the system is feasible iff
/// that minimum is 0. Pivots follow Bland's rule (the lowest-numbered
/// improving column enters; ties in the ratio test go to the lowest-numbered
/// basic variable), which cannot cycle.
struct FeasibilityProblem {
    /// The outcome of `solve`.
    enum Solution: Equatable {
        /// A solution x ≥ 0, one value per column.
        case feasible([Double])
        /// No solution; Farkas' certificate y (one value per row) has
        /// yᵀA ≤ 0 in every column and yᵀb > 0: the phase-I duals.
        case infeasible(certificate: [Double])
    }

    let rows: Int, columns: Int
    /// A: rows × columns, row-major.
    var matrix: [Double]
    /// b: one value ≥ 0 per row.
    var right: [Double]

    /// Values below this are zero (entries are scaled to about [−1, 1]).
    static let tolerance = 1e-9

    /// A problem with A = 0 and b = 0.
    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        matrix = [Double](repeating: 0, count: rows * columns)
        right = [Double](repeating: 0, count: rows)
    }

    subscript(row: Int, column: Int) -> Double {
        get { matrix[row * columns + column] }
        set { matrix[row * columns + column] = newValue }
    }

    /// Solves; nil when the pivot limit (100 per row, plus 1000) is reached.
    func solve() -> Solution? {
        precondition(right.allSatisfy { $0 >= 0 }, "the right-hand side must be nonnegative")
        // The tableau [A | I | b], one row per constraint, and the basic
        // variable of each row (columns ≥ `columns` are the artificials).
        let width = columns + rows + 1, rhs = columns + rows
        var tableau = [Double](repeating: 0, count: rows * width)
        for r in 0..<rows {
            for c in 0..<columns { tableau[r * width + c] = self[r, c] }
            tableau[r * width + columns + r] = 1
            tableau[r * width + rhs] = right[r]
        }
        var basis = (0..<rows).map { columns + $0 }
        // Reduced costs of the phase-I objective Σ artificials: c̄_j = −Σ_r a_rj
        // for the original columns, 0 for the basic artificials; cost[rhs] = −Σ b.
        var cost = [Double](repeating: 0, count: width)
        for r in 0..<rows {
            for c in 0..<columns { cost[c] -= tableau[r * width + c] }
            cost[rhs] -= tableau[r * width + rhs]
        }

        let tolerance = Self.tolerance
        for _ in 0..<(100 * rows + 1000) {
            guard let entering = (0..<(columns + rows)).first(where: { cost[$0] < -tolerance }) else {
                guard -cost[rhs] <= 1e-9 * Double(max(rows, 1)) else {
                    // An artificial column's reduced cost is 1 − y_r.
                    return .infeasible(certificate: (0..<rows).map { 1 - cost[columns + $0] })
                }
                var solution = [Double](repeating: 0, count: columns)
                for r in 0..<rows where basis[r] < columns { solution[basis[r]] = max(0, tableau[r * width + rhs]) }
                return .feasible(solution)
            }
            var leaving: Int?
            var best = Double.infinity
            for r in 0..<rows {
                let a = tableau[r * width + entering]
                guard a > tolerance else { continue }
                let ratio = tableau[r * width + rhs] / a
                if let current = leaving, ratio >= best - tolerance {
                    // A tie: the lower-numbered basic variable leaves.
                    if ratio <= best + tolerance && basis[r] < basis[current] {
                        leaving = r
                        best = min(best, ratio)
                    }
                } else {
                    leaving = r
                    best = ratio
                }
            }
            // The phase-I objective is bounded below by 0, so some row limits
            // every improving column; none would mean lost precision.
            guard let pivotRow = leaving else { return nil }

            let pivot = tableau[pivotRow * width + entering]
            for c in 0..<width { tableau[pivotRow * width + c] /= pivot }
            for r in 0..<rows where r != pivotRow {
                let factor = tableau[r * width + entering]
                guard factor != 0 else { continue }
                for c in 0..<width { tableau[r * width + c] -= factor * tableau[pivotRow * width + c] }
                tableau[r * width + entering] = 0
            }
            let factor = cost[entering]
            for c in 0..<width { cost[c] -= factor * tableau[pivotRow * width + c] }
            cost[entering] = 0
            basis[pivotRow] = entering
        }
        return nil
    }
}
