// Ranks that outnumber their host's cores stand by while one rank per core
// trains. On such a host the first ranks, as many as it has cores, train in
// a communicator of the training ranks alone; the others wait outside every
// collective, asleep, until rank 0 releases them at the end
// (`MPICommunicator.standBy`). The training ranks are a job of one rank per
// core: four ranks on two cores train as two ranks do, the same model bit
// for bit, at their speed.
//
// Without standing by, four ranks on two cores each run half-size GEMMs in
// turn, every rank swaps its working set in and out of the caches as the
// kernel shares a core between two of them, and every step's allreduce
// waits for a rank that has no core.

/// Which ranks of a job train, and which stand by.
public struct StandBy: Equatable, Sendable {
    /// The ranks that train, in rank order (rank 0 among them).
    public let training: [Int]
    /// The ranks that stand by, in rank order.
    public let standingBy: [Int]

    /// The plan for ranks on `hosts` (rank r on `hosts[r]`) whose host has
    /// `cores[r]` cores, for a global batch of `batchSize`: on every host
    /// with more ranks than cores, its first ranks, one per core, train and
    /// the others stand by. A host's ranks stand by only when they share
    /// their cores (`sharingCores[r]`: not bound each to cores of its own,
    /// where the ranks that train would not be one per core). Nil when no
    /// rank stands by, or when the batch does not divide evenly over the
    /// ranks that would train (every rank then trains, as the batch asks).
    public static func plan<Host: Hashable>(hosts: [Host], cores: [Int], sharingCores: [Bool]? = nil, batchSize: Int) -> StandBy? {
        precondition(hosts.count == cores.count, "a host and a core count per rank")
        var standing = Set<Int>()
        for host in Set(hosts) {
            let ranks = hosts.indices.filter { hosts[$0] == host }
            let keep = max(1, cores[ranks[0]])
            guard ranks.count > keep, ranks.allSatisfy({ sharingCores?[$0] ?? true }) else { continue }
            standing.formUnion(ranks.dropFirst(keep))
        }
        let training = hosts.indices.filter { !standing.contains($0) }
        guard !standing.isEmpty, batchSize % training.count == 0 else { return nil }
        return StandBy(training: training, standingBy: standing.sorted())
    }
}
