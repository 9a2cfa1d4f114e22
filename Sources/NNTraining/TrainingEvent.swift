// What a training run tells the outside world. The trainer produces these
// events and polls a stop request; everything a person sees or a run leaves
// on disk besides checkpoints (the console, metrics.jsonl, reports) is an
// observer of them, added without touching the loop.
//
// Order of one run: `started`, then per epoch `epochStarted`, any number of
// `batchEnded` (only when an observer asks for them), `checkpointSaved` (every
// N steps when asked), `epochEnded`, `parametersSampled` (only when an
// observer asks for that epoch), `checkpointSaved`; finally `stopped` (a stop
// request, after its checkpoint), or `earlyStopped` (when it ends the run),
// `finished` and `modelSaved`.

/// One thing that happened in a run.
public enum TrainingEvent: Sendable {
    /// The replicas agree on their initial state; training begins.
    case started(RunStart)
    /// An epoch begins (1-based `epoch` of `epochs`).
    case epochStarted(epoch: Int, epochs: Int)
    /// A step ended; sent only when an observer `wantsBatchProgress`.
    case batchEnded(BatchProgress)
    /// An epoch ended, with its figures.
    case epochEnded(EpochRecord)
    /// Early stopping ends the run after this epoch (before `finished`).
    case earlyStopped(EarlyStop)
    /// The parameters and the last step's gradients at the end of an epoch;
    /// sent only when an observer `wantsParameterSample` for it.
    case parametersSampled(ParameterSample)
    /// Rank 0 wrote a checkpoint (every rank learns it together).
    case checkpointSaved(path: String, globalStep: Int)
    /// A stop request was honoured at a step boundary, after a checkpoint.
    case stopped(StopPoint)
    /// Every epoch ran; the replicas agree and the test set is evaluated.
    case finished(RunResult)
    /// Rank 0 saved the final model.
    case modelSaved(path: String)
}

/// The facts of a run as it starts.
public struct RunStart: Sendable {
    public var config: RunConfig
    /// Samples per split (nil: the split is absent).
    public var trainingSamples: Int, validationSamples: Int?, testSamples: Int?
    /// Width of a feature row.
    public var featureCount: Int
    public var parameterCount: Int
    /// Descriptions of the accelerator, the communicator and how gradients are summed.
    public var accelerator: String, communicator: String, gradientReduction: String
    public var worldSize: Int
    /// Where the run continues from, when it resumes a checkpoint.
    public var resumedAt: TrainingPosition?
    /// The run directory (rank 0; empty elsewhere).
    public var runDirectory: String
    /// The host name of every rank, by rank.
    public var hosts: [String]
}

/// The running figures after one step (this rank's share of the epoch so far).
public struct BatchProgress: Sendable {
    /// 1-based epoch; steps of it taken, of `steps`.
    public var epoch: Int, step: Int, steps: Int
    /// Seconds since the epoch (or its resumed part) began.
    public var elapsed: Double
    public var metrics: Metrics
}

/// Where a stopped run stands, and how to continue it.
public struct StopPoint: Sendable {
    /// 1-based epoch; steps of it taken, of `steps`.
    public var epoch: Int, stepInEpoch: Int, steps: Int
    public var globalStep: Int
    public var worldSize: Int
    /// The run directory whose latest checkpoint holds this point.
    public var runDirectory: String
}

/// What a completed run produced.
public struct RunResult: Sendable {
    /// The epochs this process ran (a resumed run's first may be partial).
    public var history: [EpochRecord]
    /// Epochs completed since the run began, resumed parts included.
    public var epochsCompleted: Int
    /// Metrics on the test split, when there is one.
    public var test: Metrics?
    /// The test set's confusion matrix (classifiers with a test set).
    public var confusion: ConfusionMatrix?
    /// How early stopping ended the run, when it did.
    public var earlyStop: EarlyStop?
    /// CRC-32C of the final parameters, identical on every rank.
    public var parameterChecksum: UInt32
    public var worldSize: Int
}

/// Counts of (true class, predicted class) pairs over a labelled set.
public struct ConfusionMatrix: Sendable, Equatable {
    /// Class names by index (their numbers when the labels had no names).
    public var classes: [String]
    /// `counts[t][p]`: samples of true class t predicted as p.
    public var counts: [[Int]]

    /// Samples counted.
    public var total: Int { counts.reduce(0) { $0 + $1.reduce(0, +) } }
}

/// One layer's values at a sampling point, host copies in layout order.
public struct LayerSample: Sendable {
    /// `layers.{i}` as in model files.
    public var name: String
    /// `[out, in]`.
    public var weightShape: [Int]
    public var weight: [Float], bias: [Float]
    /// The last step's gradients (after the allreduce), same shapes.
    public var weightGradient: [Float], biasGradient: [Float]
}

/// The parameters of every dense layer after an epoch.
public struct ParameterSample: Sendable {
    /// 1-based epoch just ended, and the global step after it.
    public var epoch: Int, globalStep: Int
    public var layers: [LayerSample]
}

/// Which epochs' parameters are sampled for histograms: the first, the last
/// and three evenly spaced between them.
public enum ParameterSampling {
    /// Whether epoch `epoch` (1-based) of `epochs` is sampled.
    public static func wants(epoch: Int, of epochs: Int) -> Bool {
        guard epochs > 5 else { return true }
        return (0...4).contains { epoch == 1 + ($0 * (epochs - 1) + 2) / 4 }
    }
}

/// Receives a run's events. The trainer calls it on every rank; a job gives
/// the observers that write or show something to rank 0 only.
public protocol TrainingObserver: AnyObject {
    /// Whether a `batchEnded` event is wanted after step `step` of `steps`.
    /// Building one reads the running metrics back from the accelerator, so
    /// the trainer asks first.
    func wantsBatchProgress(step: Int, of steps: Int) -> Bool
    /// Whether a `parametersSampled` event is wanted after epoch `epoch` of
    /// `epochs` (copying the parameters to the host costs a little).
    func wantsParameterSample(epoch: Int, of epochs: Int) -> Bool
    /// Handles one event. Observers cannot stop a run; one that fails to
    /// record something says so its own way.
    func observe(_ event: TrainingEvent)
}

extension TrainingObserver {
    /// No batch events unless asked.
    public func wantsBatchProgress(step: Int, of steps: Int) -> Bool { false }
    /// No parameter samples unless asked.
    public func wantsParameterSample(epoch: Int, of epochs: Int) -> Bool { false }
}

/// Several observers as one, called in order.
public final class TrainingObservers: TrainingObserver {
    public private(set) var members: [any TrainingObserver]

    /// Observers called in the given order.
    public init(_ members: [any TrainingObserver] = []) { self.members = members }

    /// Adds one at the end.
    public func append(_ observer: any TrainingObserver) { members.append(observer) }

    public func wantsBatchProgress(step: Int, of steps: Int) -> Bool {
        members.contains { $0.wantsBatchProgress(step: step, of: steps) }
    }

    public func wantsParameterSample(epoch: Int, of epochs: Int) -> Bool {
        members.contains { $0.wantsParameterSample(epoch: epoch, of: epochs) }
    }

    public func observe(_ event: TrainingEvent) {
        for member in members { member.observe(event) }
    }
}

/// Asks a run to stop at the next step boundary, with a checkpoint. The
/// trainer polls it; in a job of several ranks a request on any rank stops
/// every rank at the same step.
public protocol StopRequest: AnyObject {
    /// Whether a stop was asked for. Polled from the training thread.
    var isRequested: Bool { get }
}

/// A stop request that code on the training thread sets: an observer's
/// decision, or a test.
public final class StopFlag: StopRequest {
    private var requested = false

    /// A flag that is not set.
    public init() {}

    /// Asks the run to stop.
    public func request() { requested = true }

    public var isRequested: Bool { requested }
}
