// RUN/tensorboard/: the run's curves and parameter histograms as TensorBoard
// event files, laid out as Keras' TensorBoard callback lays them out, so
// `tensorboard --logdir runs` shows them while the run trains.

import Foundation
import NNCore

/// Writes TensorBoard event files under `RUN/tensorboard/` (rank 0):
///
/// - `train/`: `epoch_loss`, `epoch_accuracy` (or `epoch_mse`, `epoch_mae`),
///   `epoch_learning_rate`, `epoch_seconds`, `epoch_samples_per_second`, and
///   in jobs of several ranks `epoch_allreduce_ms` and
///   `epoch_allreduce_call_ms_per_step`, each at step = epoch; histograms
///   `layers.i/weight`, `layers.i/bias`, `layers.i/weight_gradient`,
///   `layers.i/bias_gradient` at the epochs `ParameterSampling` picks.
/// - `validation/`: `epoch_loss`, `epoch_accuracy` … from the `val_` figures.
/// - `steps/`: `learning_rate` at step = global step (the rate the next
///   update uses), for schedules seen against optimizer steps.
/// - `test/`: `test_loss`, `test_accuracy` … once the run finishes, at step =
///   the last epoch.
///
/// Every scalar is a metrics.jsonl figure as a float. Each directory gets a
/// new `events.out.tfevents.SECONDS.HOST` file per process, opened at its first
/// value and starting with a session START at the step the process continues
/// from, so after a resume TensorBoard drops what earlier files hold for the
/// steps written again. Histograms have 30 equal-width buckets over
/// [min, max]. A write that fails is reported once through `warn`, and
/// nothing more is written; training goes on.
public final class TensorBoardLog: TrainingObserver {
    /// `RUN/tensorboard`.
    public let directory: String
    private let warn: (String) -> Void
    private let clock: () -> Double
    private var files: [String: EventFile] = [:]
    private var host = "localhost"
    private var epochs = 0
    private var resumedEpoch = 0, resumedGlobalStep = 0
    private var failed = false

    /// A log under `RUN/tensorboard`; `warn` hears, once, that it could not be
    /// written. `clock` gives the wall time of each event, seconds since 1970.
    public init(runDirectory: String, warn: @escaping (String) -> Void,
                clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) {
        directory = runDirectory + "/tensorboard"
        self.warn = warn
        self.clock = clock
    }

    public func wantsParameterSample(epoch: Int, of epochs: Int) -> Bool {
        !failed && ParameterSampling.wants(epoch: epoch, of: epochs)
    }

    public func observe(_ event: TrainingEvent) {
        guard !failed else { return }
        switch event {
        case .started(let start):
            host = start.hosts.first ?? host
            epochs = start.config.training.epochs
            resumedEpoch = start.resumedAt?.epoch ?? 0
            resumedGlobalStep = start.resumedAt?.globalStep ?? 0
        case .epochEnded(let record):
            var train: [TensorBoardEvent.Value] = [], validation: [TensorBoardEvent.Value] = []
            for (name, value) in record.fields where !EpochRecord.integerFields.contains(name) {
                if name.hasPrefix("val_") {
                    validation.append(.scalar(tag: "epoch_" + name.dropFirst(4), Float(value)))
                } else {
                    train.append(.scalar(tag: "epoch_" + name, Float(value)))
                }
            }
            write("train", step: record.epoch, train)
            write("validation", step: record.epoch, validation)
            write("steps", step: record.globalStep, [.scalar(tag: "learning_rate", record.learningRate)])
        case .parametersSampled(let sample):
            var values: [TensorBoardEvent.Value] = []
            for layer in sample.layers {
                values += [("weight", layer.weight), ("bias", layer.bias),
                           ("weight_gradient", layer.weightGradient), ("bias_gradient", layer.biasGradient)]
                    .map { .histogram(tag: layer.name + "/" + $0.0, Histogram($0.1)) }
            }
            write("train", step: sample.epoch, values)
        case .finished(let result):
            if let test = result.test {
                write("test", step: result.history.last?.epoch ?? epochs,
                      test.named(prefix: "test_").map { .scalar(tag: $0.0, Float($0.1)) })
            }
        default:
            break
        }
    }

    /// Writes `values` at `step` to `DIR/name`, opening its file first.
    private func write(_ name: String, step: Int, _ values: [TensorBoardEvent.Value]) {
        guard !failed, !values.isEmpty else { return }
        do {
            let now = clock()
            var events: [TensorBoardEvent] = []
            let file: EventFile
            if let open = files[name] {
                file = open
            } else {
                file = try EventFile(directory: directory + "/" + name, host: host, wallTime: now)
                files[name] = file
                // The first step this process writes: global steps in steps/,
                // epochs elsewhere (the test figures of a run resumed after
                // its last epoch replace the earlier ones).
                let first = name == "steps" ? resumedGlobalStep + 1
                    : name == "test" ? min(resumedEpoch + 1, step) : resumedEpoch + 1
                events.append(TensorBoardEvent(wallTime: now, step: first, .sessionStart))
            }
            events.append(TensorBoardEvent(wallTime: now, step: step, .summary(values)))
            try file.write(events)
        } catch {
            failed = true
            files = [:]
            let reason = (error as? UserError)?.message ?? "\(error)"
            warn("\(reason); no more TensorBoard events are written for this run")
        }
    }
}
