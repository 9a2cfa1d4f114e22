// Every rank must train on the same data: the same path can hold different
// files on different hosts, and a rank with other rows would train a
// different model (or, with another row count, fail inside an allreduce).
// So before the first step each rank compares a fingerprint of what it
// loaded with rank 0's.

import NNCore
import NNData
import NNDistributed
import SafeTensors

/// What identifies one split's decoded contents: its sample count, row
/// widths and a CRC-32C of its features and labels (as Float32, after scaling).
public struct SplitFingerprint: Equatable, Sendable, Codable {
    public var samples: Int
    public var featureCount: Int
    public var labelWidth: Int
    public var checksum: UInt32

    public init(samples: Int, featureCount: Int, labelWidth: Int, checksum: UInt32) {
        (self.samples, self.featureCount, self.labelWidth, self.checksum) = (samples, featureCount, labelWidth, checksum)
    }

    /// The fingerprint of `dataset`; nil (no split) gives zeros.
    public init(_ dataset: Dataset?) {
        guard let dataset else {
            (samples, featureCount, labelWidth, checksum) = (0, 0, 0, 0)
            return
        }
        samples = dataset.count
        featureCount = dataset.featureCount
        labelWidth = dataset.labelWidth
        let features = dataset.features.withUnsafeBytes { CRC32C.checksum($0) }
        checksum = dataset.labels.withUnsafeBytes { CRC32C.checksum($0, continuing: features) }
    }

    /// `1000 samples of 784 features, 1 label value`.
    var shape: String {
        "\(samples) sample\(samples == 1 ? "" : "s") of \(featureCount) feature\(featureCount == 1 ? "" : "s"), \(labelWidth) label value\(labelWidth == 1 ? "" : "s")"
    }
}

/// The fingerprints of a run's splits.
public struct DataFingerprint: Equatable, Sendable, Codable {
    /// training, validation, test (in that order), zeros for a split the run does not have.
    public var splits: [SplitFingerprint]
    public static let names = ["training", "validation", "test"]

    public init(splits: [SplitFingerprint]) { self.splits = splits }

    public init(_ data: PreparedData) {
        splits = [SplitFingerprint(data.training), SplitFingerprint(data.validation), SplitFingerprint(data.test)]
    }
}

/// Every rank compares the fingerprint of the data it loaded with rank 0's;
/// a difference stops every rank with a message naming the ranks, the split
/// and whether its size or only its contents differ.
public func agree(on data: PreparedData, _ communicator: any Communicator) throws {
    guard communicator.size > 1 else { return }
    try agree(on: data.fingerprint ?? DataFingerprint(data), communicator)
}

/// `agree(on:_:)` for a fingerprint already made (every rank must call it).
public func agree(on fingerprint: DataFingerprint, _ communicator: any Communicator) throws {
    guard communicator.size > 1 else { return }
    var problems: [String] = []
    var involved = Set<Int>()
    for (index, split) in fingerprint.splits.enumerated() {
        let samples = communicator.allGather(UInt64(split.samples))
        let features = communicator.allGather(UInt64(split.featureCount))
        let labels = communicator.allGather(UInt64(split.labelWidth))
        let sums = communicator.allGather(UInt64(split.checksum))
        func shapeOf(_ rank: Int) -> SplitFingerprint {
            var p = SplitFingerprint(nil)
            (p.samples, p.featureCount, p.labelWidth) = (Int(samples[rank]), Int(features[rank]), Int(labels[rank]))
            return p
        }
        let shapeDiffers = samples.indices.filter { samples[$0] != samples[0] || features[$0] != features[0] || labels[$0] != labels[0] }
        let contentDiffers = sums.indices.filter { sums[$0] != sums[0] && !shapeDiffers.contains($0) }
        let name = DataFingerprint.names[index]
        if !shapeDiffers.isEmpty {
            let first = shapeDiffers[0]
            problems.append("\(name) data differs in size on \(ranks(shapeDiffers)) (rank \(first): \(shapeOf(first).shape); rank 0: \(shapeOf(0).shape))")
        }
        if !contentDiffers.isEmpty {
            problems.append("\(name) data has the same size but different contents on \(ranks(contentDiffers)) (CRC-32C \(CRC32C.hex(UInt32(sums[contentDiffers[0]]))) vs rank 0's \(CRC32C.hex(UInt32(sums[0]))))")
        }
        involved.formUnion(shapeDiffers + contentDiffers)
    }
    guard !problems.isEmpty else { return }
    let message = "data mismatch: " + problems.joined(separator: "; ")
        + "; every rank must read the same files: check that the paths name the same contents on every host (copy the data, or use a shared file system)"
    throw CollectiveFailure(message: communicator.isCoordinator || involved.contains(communicator.rank)
                            ? "rank \(communicator.rank): " + message : nil)
}

private func ranks(_ list: [Int]) -> String {
    "rank\(list.count == 1 ? "" : "s") " + list.map(String.init).joined(separator: ", ")
}
