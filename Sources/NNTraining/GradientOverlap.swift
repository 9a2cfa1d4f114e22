// Whether the gradients' allreduce overlaps backward: measured per model at
// start-up, because it pays only where the allreduce is long against the
// layers still to be computed and a core is free to run it (a GPU, or CPU
// ranks with cores to spare), and costs a thread hand-over otherwise.

import Foundation
import NNCore
import NNDistributed

/// `--overlap-allreduce`: measure (`auto`), always (`on`) or never (`off`).
public enum OverlapRequest: String, CaseIterable, Sendable {
    case auto, on, off
}

/// How the gradients were summed in a run, and why: run.json's `overlap`.
public struct OverlapRecord: Equatable, Sendable {
    /// How the choice was made.
    public enum Source: String, Sendable {
        /// Both ways timed on real batches at start-up; the faster won.
        case measured
        /// The one the run being resumed measured.
        case resumed
        /// `--overlap-allreduce on|off`.
        case flag
        /// Overlap cannot apply (`detail` says why): one fused allreduce.
        case inapplicable
    }

    /// Whether backward and the allreduce overlap.
    public var overlapped: Bool
    /// Buckets the overlapped allreduce would use (or uses).
    public var buckets: Int
    public var source: Source
    /// Why overlap cannot apply, or what asked for the choice.
    public var detail: String?
    /// Mean seconds of one gradient pass (forward, backward, sum), each way, when measured.
    public var fusedSeconds: Double?, overlappedSeconds: Double?

    public init(overlapped: Bool, buckets: Int, source: Source, detail: String? = nil,
                fusedSeconds: Double? = nil, overlappedSeconds: Double? = nil) {
        self.overlapped = overlapped
        self.buckets = buckets
        self.source = source
        self.detail = detail
        self.fusedSeconds = fusedSeconds
        self.overlappedSeconds = overlappedSeconds
    }

    /// run.json's `overlap` object.
    var json: [String: Any] {
        ["overlapped": overlapped, "buckets": buckets, "source": source.rawValue, "detail": detail ?? NSNull(),
         "fused_ms": fusedSeconds.map { $0 * 1000 } ?? NSNull(), "overlapped_ms": overlappedSeconds.map { $0 * 1000 } ?? NSNull()]
    }

    /// What an earlier start of the run in `runDirectory` measured (or
    /// reused), with the world size it was measured for; nil when run.json holds none.
    public static func measured(inRunDirectory runDirectory: String) -> (overlapped: Bool, worldSize: Int)? {
        guard let data = FileManager.default.contents(atPath: runDirectory + "/run.json"),
              let run = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let record = run["overlap"] as? [String: Any],
              let source = (record["source"] as? String).flatMap(Source.init(rawValue:)),
              source == .measured || source == .resumed,
              let overlapped = record["overlapped"] as? Bool,
              let worldSize = run["world_size"] as? Int else { return nil }
        return (overlapped, worldSize)
    }
}

extension Trainer {
    /// The overlapped allreduce's smallest bucket (PyTorch DDP's default is 25 MB;
    /// smaller buckets start earlier on the models this trainer holds).
    public static let bucketBytes = 4 << 20

    /// Why this run cannot overlap its allreduce, or nil when it can.
    var overlapProblem: String? {
        if communicator.size == 1 { return "one rank" }
        if !accelerator.isHostMemory { return "gradients in device memory are staged through the host in one copy" }
        if config.training.gradientCompression != nil { return "gradient compression sums the whole buffer at once" }
        if sharding != nil { return "the optimizer update is sharded: its reduce-scatter runs after backward" }
        if !communicator.collectivesFromAnyThread { return "MPI was started without thread support (--collective-timeout 0)" }
        return nil
    }

    /// Settles how the gradients are summed before the first step
    /// (collective: every rank calls it with the same arguments): `.off`
    /// keeps the one fused allreduce; `.on` overlaps; `.auto` times both on
    /// the first batch of the run and keeps the faster, unless `resumed`
    /// (what the run being resumed chose, for the same world size) says.
    /// Nil with one rank.
    public func settleOverlap(_ request: OverlapRequest, resumed: Bool?, bucketBytes: Int = Trainer.bucketBytes) -> OverlapRecord? {
        guard communicator.size > 1 else { return nil }
        let ranges = model.parameterRanges.compactMap { $0 }
        let plan = OverlappingGradientReducer.plan(layerRanges: ranges, bucketValues: max(1, bucketBytes / MemoryLayout<Float>.stride))
        if let problem = overlapProblem {
            return OverlapRecord(overlapped: false, buckets: plan.count, source: .inapplicable, detail: problem)
        }
        func overlapping() -> OverlappingGradientReducer {
            OverlappingGradientReducer(communicator: communicator, layerRanges: ranges, bucketBytes: bucketBytes)
        }
        switch request {
        case .off:
            return OverlapRecord(overlapped: false, buckets: plan.count, source: .flag, detail: "--overlap-allreduce off")
        case .on:
            reducer = overlapping()
            return OverlapRecord(overlapped: true, buckets: plan.count, source: .flag, detail: "--overlap-allreduce on")
        case .auto:
            break
        }
        if let resumed {
            if resumed { reducer = overlapping() }
            return OverlapRecord(overlapped: resumed, buckets: plan.count, source: .resumed, detail: "measured by the run being resumed")
        }
        if plan.count < 2 {
            return OverlapRecord(overlapped: false, buckets: plan.count, source: .inapplicable,
                                 detail: "the gradients fill one bucket, which can start only when backward ends")
        }
        let fused = reducer, overlapped = overlapping()
        let gradients = model.gradients
        let (fusedSeconds, overlappedSeconds) = timeGradientPasses(
            PassEnding(overlapping: nil) { fused.sum(gradients) },
            PassEnding(overlapping: overlapped) { overlapped.sum(gradients) })
        let faster = overlappedSeconds < fusedSeconds
        if faster { reducer = overlapped }
        return OverlapRecord(overlapped: faster, buckets: plan.count, source: .measured,
                             fusedSeconds: fusedSeconds, overlappedSeconds: overlappedSeconds)
    }

    /// How one way of timing a gradient pass ends after backward: the
    /// reducer that hears backward's ranges as they finish (nil: none), and
    /// what sums the gradients (and, for the optimizer's choice, updates
    /// without writing).
    struct PassEnding {
        var overlapping: (any GradientReducer)?
        var finish: () -> Void
    }

    /// Mean seconds of one gradient pass (zero, forward and backward on this
    /// rank's share of the run's first batch, then the way's ending) each
    /// way, on the slowest rank: three interleaved rounds after a warm-up
    /// pass each, each way's time the median of its round means. The
    /// epoch's running statistics are put back afterwards and no parameter changes.
    func timeGradientPasses(_ a: PassEnding, _ b: PassEnding) -> (Double, Double) {
        let saved = accelerator.values(statistics)
        let order = sampler.order(epoch: 0)
        let global = sampler.globalBatch(step: 0)
        let local = slice(step: 0)
        func pass(_ way: PassEnding) {
            model.zeroGradients()
            if !local.isEmpty {
                let (inputs, targets) = order.withUnsafeBufferPointer {
                    batches.load(data.training, indices: UnsafeBufferPointer(rebasing: $0[local]))
                }
                let pass = Pass(training: true, seed: config.training.seed, step: 0, rowOffset: local.lowerBound - global.lowerBound)
                model.accumulateGradients(inputs: inputs, targets: targets, gradientScale: 1 / Float(max(global.count, 1)),
                                          pass: pass, statistics: statistics,
                                          gradientsReady: way.overlapping.map { reducer in { reducer.gradientsReady(self.model.gradients, range: $0) } })
            }
            way.finish()
        }
        func seconds(_ way: PassEnding, passes: Int) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<passes { pass(way) }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(passes)
        }
        // Warm-up; the slowest rank's pass sets how many passes fill about 0.1 s.
        let warm = max(seconds(a, passes: 1), seconds(b, passes: 1))
        let slowest = communicator.allGather(UInt64(warm * 1e9)).max() ?? 0
        let passes = min(20, max(2, Int(0.1 / max(Double(slowest) / 1e9, 1e-6))))
        var rounds: ([Double], [Double]) = ([], [])
        for _ in 0..<3 {
            rounds.0.append(seconds(a, passes: passes))
            rounds.1.append(seconds(b, passes: passes))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        // Every rank takes the slowest rank's times, so all choose alike.
        let times = [median(rounds.0), median(rounds.1)].map { value in
            Double(communicator.allGather(UInt64(value * 1e9)).max() ?? 0) / 1e9
        }
        model.zeroGradients()
        saved.withUnsafeBufferPointer { accelerator.copy($0, to: statistics) }
        return (times[0], times[1])
    }
}
