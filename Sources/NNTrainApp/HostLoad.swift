// Whether this host runs more ranks than it has cores: rank 0 says so, and
// BLAS runs on one thread (Open MPI's waits yield the core, see Environment).

import Foundation
import NNDistributed
import NNTraining

/// The ranks of a job on one host against the cores they may run on.
struct HostLoad: Equatable {
    /// Ranks of the job on this host.
    var ranks: Int
    /// Cores the host's ranks may run on, together.
    var cores: Int

    /// Whether this host's ranks may all run on the same cores (the same
    /// CPU affinity), rather than each bound to cores of its own.
    var sharesCores = true

    /// More ranks than cores: some rank always waits for a core.
    var isOversubscribed: Bool { ranks > cores }

    /// The ranks of this host against the union of their CPU affinities,
    /// gathered from every rank (one collective per 64 CPUs). A rank bound
    /// to its own core sees one; the host has as many as its ranks together.
    static func measure(_ communicator: any Communicator, nodes: [Int], allowedCPUs: [Int]) -> HostLoad {
        var mine = mask(allowedCPUs)
        let words = Int(communicator.allGather(UInt64(mine.count)).max() ?? 1)
        mine += Array(repeating: 0, count: max(0, words - mine.count))
        let byWord = (0..<words).map { communicator.allGather(mine[$0]) }
        let here = nodes.indices.filter { nodes[$0] == nodes[communicator.rank] }
        let masks = here.map { r in byWord.map { $0[r] } }
        var load = HostLoad(ranks: communicator.localSize, cores: max(1, cores(masks)))
        load.sharesCores = masks.allSatisfy { $0 == masks[0] }
        return load
    }

    /// The CPUs in a kernel CPU list such as `0-3,8,10-11` (nil: not one).
    static func cpus(list: String) -> [Int]? {
        var result: [Int] = []
        for part in list.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let first = ends.first ?? nil, let last = ends.last ?? nil, ends.count <= 2, first >= 0, first <= last else { return nil }
            result += Array(first...last)
        }
        return result.isEmpty ? nil : result
    }

    /// CPUs as a bit mask, 64 to a word.
    static func mask(_ cpus: [Int]) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: (cpus.max() ?? 0) / 64 + 1)
        for cpu in cpus where cpu >= 0 { words[cpu / 64] |= 1 << UInt64(cpu % 64) }
        return words
    }

    /// The CPUs in the union of masks.
    static func cores(_ masks: [[UInt64]]) -> Int {
        let width = masks.map(\.count).max() ?? 0
        return (0..<width).reduce(0) { total, w in
            total + masks.reduce(UInt64(0)) { $0 | (w < $1.count ? $1[w] : 0) }.nonzeroBitCount
        }
    }

    /// The host's cores as one rank guesses them before MPI starts, from
    /// its own affinity: a rank the launcher bound to its own cores
    /// (`boundByLauncher`) sees only its share, so the host counts its online
    /// CPUs; any other rank inherited the launcher's affinity (all CPUs, or a
    /// `taskset` or cpuset subset), which every rank of the host shares.
    static func cores(allowed: Int, online: Int, boundByLauncher: Bool) -> Int {
        max(1, boundByLauncher ? max(allowed, online) : allowed)
    }

    /// The start-up line for an oversubscribed host (nil otherwise).
    var note: String? {
        guard isOversubscribed else { return nil }
        return "this host is oversubscribed: \(ranks) ranks on \(cores) core\(cores == 1 ? "" : "s"); "
            + "waiting ranks yield their core and BLAS runs 1 thread per rank"
    }
}

/// `--stand-by`: the ranks beyond one per core stand by (`auto`), or every rank trains (`off`).
enum StandByRequest: String, CaseIterable {
    case auto, off
}

extension StandBy {
    /// The plan for this job's ranks (a collective: every rank calls it) on
    /// `nodes` (MPI's, by rank): each node's cores, gathered from every rank, against its ranks, for
    /// a global batch of `batchSize`; nil unless asked for and every rank's
    /// model is in host memory (GPU ranks do not share the host's cores for
    /// their arithmetic).
    static func settle(_ request: StandByRequest, load: HostLoad, nodes: [Int], hostMemory: Bool, batchSize: Int,
                       communicator: any Communicator) -> StandBy? {
        guard communicator.size > 1 else { return nil }
        let cores = communicator.allGather(UInt64(load.cores)).map(Int.init)
        let sharing = communicator.allGather(load.sharesCores ? 1 : 0).map { $0 == 1 }
        // Every rank must agree: a rank that trained while others stood by
        // for it would leave the job waiting.
        let willing = communicator.allGather(request == .auto && hostMemory ? 1 : 0).allSatisfy { $0 == 1 }
        guard willing else { return nil }
        return plan(hosts: nodes, cores: cores, sharingCores: sharing, batchSize: batchSize)
    }

    /// The start-up line: `one rank per core trains: ranks 0 and 1 train,
    /// ranks 2 and 3 stand by, asleep, …`.
    var note: String {
        "one rank per core trains: " + Self.list(training) + " train, " + Self.list(standingBy)
            + " stand by, asleep, until the run ends (the model is the one \(training.count) rank\(training.count == 1 ? "" : "s") would train; --stand-by off: every rank trains)"
    }

    /// `rank 1`, `ranks 1 and 3`, `ranks 1, 2 and 3`.
    static func list(_ ranks: [Int]) -> String {
        let names = ranks.map(String.init)
        guard let last = names.last else { return "no rank" }
        return names.count == 1 ? "rank " + last : "ranks " + names.dropLast().joined(separator: ", ") + " and " + last
    }
}

extension CollectiveWait {
    /// The wait as a number ranks can compare: 0 blocking, 1 yielding.
    var kind: Int {
        switch self {
        case .blocking: return 0
        case .yielding: return 1
        }
    }
}
