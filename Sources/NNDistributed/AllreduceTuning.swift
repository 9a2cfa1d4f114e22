// Choosing the gradients' allreduce algorithm: Open MPI's numbering, the
// shared-memory sum of one host, the names a user may give, and the
// arithmetic of a measurement (how many calls to time, which algorithm
// wins). Nothing here calls MPI, so the rules are tested without a job;
// `MPICommunicator.tuneAllreduce` does the timing.

/// The gradients' allreduce algorithms, Open MPI's
/// (`coll_tuned_allreduce_algorithm`) and the shared-memory sum, and how
/// one is picked from timings.
public enum AllreduceTuning {
    /// Open MPI's numbering of `coll_tuned_allreduce_algorithm` values.
    public static let openMPIAlgorithms = [1: "basic linear", 2: "nonoverlapping", 3: "recursive doubling",
                                           4: "ring", 5: "segmented ring", 6: "rabenseifner"]

    /// Not one of Open MPI's numbers: the sum through the shared memory of
    /// one host (`MPICommunicator.allocateShared`), for ranks that all
    /// share it.
    public static let sharedMemory = 101

    /// Every algorithm by number: Open MPI's and the shared-memory sum.
    public static let algorithms = openMPIAlgorithms.merging([sharedMemory: "shared memory"]) { first, _ in first }

    /// The algorithm numbers, in order.
    public static var numbers: [Int] { algorithms.keys.sorted() }

    /// Open MPI's algorithm numbers, in order.
    public static var openMPINumbers: [Int] { openMPIAlgorithms.keys.sorted() }

    /// The name of algorithm `number`, or `algorithm N` for one Open MPI may add.
    public static func name(_ number: Int) -> String { algorithms[number] ?? "algorithm \(number)" }

    /// The number of an algorithm given as `1`–`6` (Open MPI's) or by name;
    /// spaces, hyphens and underscores are the same (`recursive-doubling`).
    public static func number(named text: String) -> Int? {
        if let number = Int(text) { return openMPIAlgorithms[number] == nil ? nil : number }
        let wanted = canonical(text)
        return algorithms.first { canonical($0.value) == wanted }?.key
    }

    /// The names as a user types them on the command line.
    public static var flagNames: [String] { numbers.map { String(name($0).map { $0 == " " ? "-" : $0 }) } }

    private static func canonical(_ text: String) -> String {
        String(text.lowercased().map { $0 == "-" || $0 == "_" ? " " : $0 })
    }

    /// Seconds of timed calls each algorithm gets: six of them stay near
    /// 1 s together, whatever the buffer.
    public static let secondsPerAlgorithm = 0.15
    /// Untimed calls before each algorithm's timing (the first may set up connections).
    public static let warmUpCalls = 2
    /// The fewest and most timed calls per algorithm.
    public static let iterationRange = 3...200

    /// Timed calls for an algorithm whose warm-up call took `callSeconds`
    /// (the slowest rank's, so every rank makes the same number): as many
    /// as fit `budget`, within `iterationRange`.
    public static func iterations(callSeconds: Double, budget: Double = secondsPerAlgorithm) -> Int {
        guard callSeconds.isFinite, callSeconds > 0 else { return iterationRange.upperBound }
        let fitting = (budget / callSeconds).rounded(.down)
        return Int(min(max(fitting, Double(iterationRange.lowerBound)), Double(iterationRange.upperBound)))
    }

    /// Rounds of every algorithm in turn that share each algorithm's calls.
    public static let rounds = 3

    /// Timed calls per round for `iterations` in all (at least one).
    public static func callsPerRound(_ iterations: Int) -> Int { Swift.max(1, iterations / rounds) }

    /// The middle value (the mean of the two middle ones for an even count; 0 for none).
    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Each algorithm's time on the slowest rank: the element-wise maximum
    /// of every rank's mean seconds (what an MPI_MAX allreduce computes).
    public static func slowestRank(_ perRank: [[Double]]) -> [Double] {
        guard let first = perRank.first else { return [] }
        return perRank.dropFirst().reduce(first) { zip($0, $1).map { Swift.max($0, $1) } }
    }

    /// The fastest of `timings` (non-finite times never win); a tie goes
    /// to the lower algorithm number. Nil when none has a finite time.
    public static func fastest(_ timings: [AllreduceTiming]) -> Int? {
        timings.filter { $0.seconds.isFinite && $0.seconds >= 0 }
            .min { ($0.seconds, $0.algorithm) < ($1.seconds, $1.algorithm) }?.algorithm
    }
}

/// One algorithm's time in a measurement.
public struct AllreduceTiming: Equatable, Sendable {
    /// Open MPI's number for the algorithm (see `AllreduceTuning.algorithms`).
    public var algorithm: Int
    /// Seconds per call on the slowest rank (its median of round means).
    public var seconds: Double
    /// Timed calls, all rounds together.
    public var iterations: Int

    /// A timing of algorithm `algorithm`.
    public init(algorithm: Int, seconds: Double, iterations: Int) {
        self.algorithm = algorithm
        self.seconds = seconds
        self.iterations = iterations
    }
}

/// The allreduce algorithms timed on a buffer of the gradients' size, and the one chosen.
public struct AllreduceMeasurement: Equatable, Sendable {
    /// Floats per call.
    public var count: Int
    /// Ranks that took part.
    public var ranks: Int
    /// Every algorithm's time, by algorithm number.
    public var timings: [AllreduceTiming]
    /// The fastest algorithm, now used for the gradients.
    public var chosen: Int
    /// Wall seconds the whole measurement took.
    public var seconds: Double

    /// A measurement of `timings` that chose `chosen`.
    public init(count: Int, ranks: Int, timings: [AllreduceTiming], chosen: Int, seconds: Double) {
        self.count = count
        self.ranks = ranks
        self.timings = timings
        self.chosen = chosen
        self.seconds = seconds
    }
}

/// What became of a request to tune or set the gradients' allreduce algorithm.
public enum AllreduceTuningResult: Equatable, Sendable {
    /// Every algorithm was timed, and the fastest is in use.
    case measured(AllreduceMeasurement)
    /// The requested algorithm is in use, unmeasured.
    case applied(Int)
    /// The algorithm cannot be chosen at run time (the reason); the
    /// library's own choice stays.
    case unavailable(String)
}
