// Gathering a batch of dataset rows into the accelerator's tensors.

import NNCore
import NNData

/// Gathers dataset rows into device tensors, encoding labels as the loss
/// expects them. On a host-memory accelerator rows go straight into the
/// tensors. On a device they go through two sets of host buffers used in
/// turn, so gathering the next batch overlaps the copy of this one.
struct BatchAssembler {
    let accelerator: any Accelerator
    let objective: Objective
    let featureCount: Int
    let labelWidth: Int
    /// Largest batch it holds.
    let rows: Int
    /// inputs: (rows × featureCount); targets: (rows × objective.targetWidth).
    private let inputs: Tensor
    private let targets: Tensor
    private var hostLabels: [Float]
    /// Device accelerators only: (features, targets) host buffers, used in turn.
    private let uploads: [(features: HostBuffer, targets: HostBuffer)]
    private var nextUpload = 0

    init(accelerator: any Accelerator, objective: Objective, featureCount: Int, labelWidth: Int, rows: Int) {
        self.accelerator = accelerator
        self.objective = objective
        self.featureCount = featureCount
        self.labelWidth = labelWidth
        self.rows = rows
        inputs = accelerator.tensor(rows: rows, columns: featureCount)
        targets = accelerator.tensor(rows: rows, columns: objective.targetWidth)
        hostLabels = [Float](repeating: 0, count: rows * labelWidth)
        uploads = accelerator.isHostMemory ? [] : (0..<2).map { _ in
            (accelerator.allocateHostBuffer(rows * featureCount), accelerator.allocateHostBuffer(rows * objective.targetWidth))
        }
    }

    /// Loads the rows `indices` of `dataset`; the tensors stay valid until the next load.
    mutating func load(_ dataset: Dataset, indices: UnsafeBufferPointer<Int32>) -> (Tensor, Tensor) {
        let n = indices.count
        precondition(n <= rows)
        let x = inputs.prefix(rows: n), y = targets.prefix(rows: n)
        let features: UnsafeMutablePointer<Float>, encoded: UnsafeMutablePointer<Float>
        var upload: (features: HostBuffer, targets: HostBuffer)?
        if accelerator.isHostMemory {
            (features, encoded) = (x.hostPointer, y.hostPointer)
        } else {
            let set = uploads[nextUpload]
            nextUpload = 1 - nextUpload
            set.features.waitUntilWritable()
            set.targets.waitUntilWritable()
            (features, encoded) = (set.features.baseAddress, set.targets.baseAddress)
            upload = set
        }
        hostLabels.withUnsafeMutableBufferPointer { labels in
            dataset.gather(indices: indices, features: features, labels: labels.baseAddress!)
            objective.encodeTargets(labels: labels.baseAddress!, labelWidth: dataset.labelWidth, rows: n, into: encoded)
        }
        if let upload {
            accelerator.copy(upload.features, to: x)
            accelerator.copy(upload.targets, to: y)
        }
        return (x, y)
    }
}
