// Which allreduce algorithm sums the gradients: what the user asked for,
// what that means before MPI_Init, and the choice made once the trainer
// knows its gradient buffer's size.

import Foundation
import NNDistributed
import NNTraining

/// The value of `--allreduce-algorithm`.
enum AllreduceRequest: Equatable {
    /// Time every algorithm at start-up and use the fastest (`auto`).
    case measure
    /// Open MPI's own decision rules (`default`).
    case openMPIDefault
    /// This algorithm, by Open MPI's number (`1`–`6` or a name).
    case algorithm(Int)

    /// The request a flag value names, or nil.
    init?(flag text: String) {
        switch text.lowercased() {
        case "auto": self = .measure
        case "default": self = .openMPIDefault
        default:
            guard let number = AllreduceTuning.number(named: text) else { return nil }
            self = .algorithm(number)
        }
    }

    /// How the flag writes it.
    var flagValue: String {
        switch self {
        case .measure: return "auto"
        case .openMPIDefault: return "default"
        case .algorithm(let number): return AllreduceTuning.flagNames[AllreduceTuning.numbers.firstIndex(of: number) ?? 0]
        }
    }

    /// The error for a value no request has.
    static func unknown(_ text: String) -> String {
        "--allreduce-algorithm: unknown algorithm '\(text)'; choose auto, default, 1-6 or one of "
            + AllreduceTuning.flagNames.joined(separator: ", ")
    }
}

/// How the algorithm is decided, as settled before `MPI_Init`.
enum AllreducePlan: Equatable {
    /// Measured once the gradient buffer's size is known (or, on resume,
    /// the earlier measurement reused).
    case measure
    /// Forced through the environment Open MPI reads at `MPI_Init`; `source` says who asked.
    case fixed(Int, source: String)
    /// Left to Open MPI's decision rules; `source` says who asked.
    case openMPI(source: String)
}

extension Launch {
    /// Settles whether the allreduce overlaps backward (collective): on
    /// `--resume` with `auto`, rank 0 reads what the run being resumed
    /// measured for the same world size and every rank follows it, so the
    /// resumed run sums in the same buckets.
    static func chooseOverlap(_ request: OverlapRequest, trainer: Trainer, communicator: any Communicator) -> OverlapRecord? {
        guard communicator.size > 1 else { return nil }
        var earlier: [UInt64] = [0]  // 0: none, 1: fused, 2: overlapped
        if request == .auto, let directory = trainer.runDirectory, trainer.resumedAt != nil,
           let found = OverlapRecord.measured(inRunDirectory: directory), found.worldSize == communicator.size {
            earlier[0] = found.overlapped ? 2 : 1
        }
        if request == .auto { earlier.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) } }
        return trainer.settleOverlap(request, resumed: earlier[0] == 0 ? nil : earlier[0] == 2)
    }

    /// Settles whether the optimizer update is sharded (collective), as
    /// `chooseOverlap` settles the overlap: on `--resume` with `auto`, the
    /// choice the run being resumed measured for the same world size, so
    /// the resumed run adds in the same order.
    static func chooseSharding(_ request: ShardingRequest, trainer: Trainer, communicator: any Communicator) throws -> ShardingRecord? {
        guard communicator.size > 1 else { return try trainer.settleSharding(request) }
        var earlier: [UInt64] = [0]  // 0: none, 1: whole, 2: sharded
        if request == .auto, let directory = trainer.runDirectory, trainer.resumedAt != nil,
           let found = ShardingRecord.measured(inRunDirectory: directory), found.worldSize == communicator.size {
            earlier[0] = found.sharded ? 2 : 1
        }
        if request == .auto { earlier.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) } }
        return try trainer.settleSharding(request, resumed: earlier[0] == 0 ? nil : earlier[0] == 2)
    }

    /// Settles the gradients' allreduce algorithm before the first step
    /// (collective): measured on `count` floats, or on `--resume` the
    /// algorithm the run being resumed measured for the same world size, so
    /// the resumed run sums in the same order; fixed and default plans just
    /// record what Open MPI was told. `runDirectory` is rank 0's. Nil with one rank.
    static func chooseAllreduce(_ plan: AllreducePlan, count: Int, resuming: Bool, runDirectory: String?,
                                communicator: any Communicator) -> AllreduceRecord? {
        guard communicator.size > 1 else { return nil }
        switch plan {
        case .fixed(AllreduceTuning.sharedMemory, let source):
            if case .unavailable(let reason)? = communicator.useAllreduceAlgorithm(AllreduceTuning.sharedMemory) {
                return AllreduceRecord(algorithm: nil, source: .openMPI, detail: "\(source): \(reason)")
            }
            return AllreduceRecord(algorithm: AllreduceTuning.sharedMemory, source: .flag, detail: source)
        case .fixed(let number, let source):
            return AllreduceRecord(algorithm: number, source: source.hasPrefix("--") ? .flag : .environment, detail: source)
        case .openMPI(let source):
            return AllreduceRecord(algorithm: nil, source: .openMPI, detail: source)
        case .measure:
            break
        }
        if resuming {
            // Rank 0 holds the run directory: it reads, every rank learns.
            var earlier: [UInt64] = [0]
            if let runDirectory, let found = AllreduceRecord.measured(inRunDirectory: runDirectory),
               found.worldSize == communicator.size {
                earlier[0] = UInt64(found.algorithm)
            }
            earlier.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) }
            if earlier[0] != 0 {
                let number = Int(earlier[0])
                switch communicator.useAllreduceAlgorithm(number) {
                case .applied?:
                    return AllreduceRecord(algorithm: number, source: .resumed, detail: "measured by the run being resumed")
                case .unavailable(let reason)?:
                    return AllreduceRecord(algorithm: nil, source: .openMPI, detail: reason)
                case .measured?, nil:
                    break
                }
            }
        }
        switch communicator.tuneAllreduce(count: count) {
        case .measured(let measurement)?:
            return AllreduceRecord(algorithm: measurement.chosen, source: .measured, measurement: measurement)
        case .unavailable(let reason)?:
            return AllreduceRecord(algorithm: nil, source: .openMPI, detail: reason)
        case .applied(let number)?:
            return AllreduceRecord(algorithm: number, source: .measured)
        case nil:
            return nil
        }
    }
}
