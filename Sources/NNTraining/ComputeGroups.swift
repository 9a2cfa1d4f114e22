// Ranks that outnumber their host's cores lend their slice of each batch to
// a rank that has a core. On such a host the ranks form as many groups of
// consecutive ranks as the host has cores, and each group's first rank
// computes the slices of the whole group in one forward and backward pass;
// the others compute nothing, contribute a zero gradient, and wait in the
// allreduce with their core given back. The rows are those the group's ranks
// would have computed (their slices are consecutive, so their union is one
// slice, with the same rows at the same offsets in the global batch, and
// the same dropout masks), so the summed gradient is the same up to
// summation order. A lending rank's zero is -0, the one value that added to
// any float leaves it unchanged, so the sum is exactly that of the groups'
// passes: four ranks on two cores train bit for bit as two ranks do.
//
// Without groups, four ranks on two cores each run half-size GEMMs in turn,
// and every rank swaps its working set in and out of the caches as the
// kernel shares a core between two of them; with groups, two ranks compute
// as two ranks on two cores do.

import NNData

/// Which ranks compute each step's slices of the batch.
public struct ComputeGroups: Equatable, Sendable {
    /// Per rank, the consecutive ranks whose slices it computes: itself, the
    /// group it leads, or none (empty: it lends its slice).
    public let computed: [Range<Int>]

    public init(computed: [Range<Int>]) { self.computed = computed }

    /// The groups for ranks on `hosts` (rank r on `hosts[r]`) whose host has
    /// `cores[r]` cores: on every host with more ranks than cores, its ranks
    /// in as many groups of equal size as it has cores. A host's ranks are
    /// grouped only when they are consecutive (ranks spread over hosts round
    /// robin have slices that are not one slice), share their cores
    /// (`sharingCores[r]`: not bound each to a core of its own, which would
    /// put a group's computing ranks on cores that others share), and divide
    /// evenly by its cores (3 ranks on 2 cores in groups of 1 and 2 would
    /// leave one core with twice the other's rows, slower than the kernel
    /// sharing 2 cores among 3). Nil when no host's ranks form any group.
    public static func plan(hosts: [String], cores: [Int], sharingCores: [Bool]? = nil) -> ComputeGroups? {
        precondition(hosts.count == cores.count, "a host and a core count per rank")
        var computed = hosts.indices.map { $0..<$0 + 1 }
        for host in Set(hosts) {
            let ranks = hosts.indices.filter { hosts[$0] == host }
            let count = ranks.count, groups = max(1, cores[ranks[0]])
            guard count > groups, count % groups == 0, ranks.last! - ranks[0] + 1 == count,
                  ranks.allSatisfy({ sharingCores?[$0] ?? true }) else { continue }
            for group in 0..<groups {
                let first = ranks[0] + group * count / groups, end = ranks[0] + (group + 1) * count / groups
                computed[first] = first..<end
                for lender in first + 1..<end { computed[lender] = lender..<lender }
            }
        }
        let identity = computed.indices.allSatisfy { computed[$0] == $0..<$0 + 1 }
        return identity ? nil : ComputeGroups(computed: computed)
    }

    /// The ranks that compute (lead a group or compute alone).
    public var computing: [Int] { computed.indices.filter { !computed[$0].isEmpty } }

    /// The ranks that lend their slice.
    public var lending: [Int] { computed.indices.filter { computed[$0].isEmpty } }

    /// The most ranks one rank computes for.
    public var largestGroup: Int { computed.map(\.count).max() ?? 1 }

    /// Rank `rank`'s rows of step `step`'s global batch: the union of the
    /// slices of the ranks it computes for (empty, at the batch's start, for a lender).
    func slice(step: Int, rank: Int, sampler: ShardedSampler) -> Range<Int> {
        let ranks = computed[rank], worldSize = computed.count
        guard let first = ranks.first, let last = ranks.last else {
            let start = sampler.globalBatch(step: step).lowerBound
            return start..<start
        }
        return sampler.localBatch(step: step, rank: first, worldSize: worldSize).lowerBound
            ..< sampler.localBatch(step: step, rank: last, worldSize: worldSize).upperBound
    }

    /// run.json's `compute_groups`: each computing rank and the ranks it computes for.
    var json: [[Int]] { computing.map { Array(computed[$0]) } }
}
