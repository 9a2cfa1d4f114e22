// Decisions every rank takes together. A rank that fails alone must not
// leave the others waiting in a collective, so failures are agreed on first.

import NNCore
import NNDistributed

/// A failure that every rank of the job learned about together.
public struct CollectiveFailure: Error, Sendable {
    /// What this rank should report (nil: another rank reports the reason).
    public let message: String?

    /// A failure this rank reports with `message`, or leaves to another rank (nil).
    public init(message: String?) { self.message = message }
}

/// Runs `body` on every rank, then lets every rank know whether any failed,
/// so none is left waiting in a collective. A failure seen by every rank
/// alike is reported once, by rank 0; one seen by some ranks is reported by
/// each of them with its rank number, and rank 0 says that it stopped.
public func collectively<T>(_ communicator: any Communicator, _ body: () throws -> T) throws -> T {
    var result: Result<T, UserError>
    do {
        result = .success(try body())
    } catch {
        // Any failure must reach the agreement below, or the other ranks wait forever.
        result = .failure(error as? UserError ?? UserError("\(error)"))
    }
    guard communicator.size > 1 else { return try result.get() }
    let failed = communicator.allGather(result.isSuccess ? 0 : 1)
    if case .failure(let error) = result {
        if failed.allSatisfy({ $0 == 1 }) {
            throw CollectiveFailure(message: communicator.isCoordinator ? error.message : nil)
        }
        throw CollectiveFailure(message: "rank \(communicator.rank): " + error.message)
    }
    if let first = failed.firstIndex(of: 1) {
        throw CollectiveFailure(message: communicator.isCoordinator && first != 0
                                ? "rank \(first) failed during start-up (see its message); stopping every rank" : nil)
    }
    return try result.get()
}

/// Every rank compares the fingerprint of its resolved configuration with
/// rank 0's; a mismatch stops all of them with a message naming the ranks.
public func agree(on config: RunConfig, _ communicator: any Communicator) throws {
    guard communicator.size > 1 else { return }
    let prints = communicator.allGather(config.fingerprint)
    let differing = prints.indices.filter { prints[$0] != prints[0] }
    guard !differing.isEmpty else { return }
    let ranks = differing.map(String.init).joined(separator: ", ")
    let message = "configuration mismatch: rank\(differing.count == 1 ? "" : "s") \(ranks) resolved a different configuration than rank 0 (fingerprint \(String(prints[differing[0]], radix: 16)) vs \(String(prints[0], radix: 16))); every rank must get the same config file, preset and flags"
    throw CollectiveFailure(message: communicator.isCoordinator || differing.contains(communicator.rank)
                            ? "rank \(communicator.rank): " + message : nil)
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
