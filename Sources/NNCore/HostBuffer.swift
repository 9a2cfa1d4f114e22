// Host memory for transfers, and the on-device record of non-finite gradients.
//
// Both exist so that a device backend never has to stop the host to wait: a
// GPU copies from page-locked host memory while the host prepares the next
// batch, and a NaN check leaves its answer on the device until the host asks.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A point in an accelerator's queued work that the host can wait for.
public protocol TransferFence: AnyObject {
    /// Marks the end of the work queued so far.
    func record()
    /// Waits until the work queued before the latest `record()` has finished.
    func wait()
}

/// Float32 host memory that an accelerator reads and writes in transfers
/// (page-locked on CUDA, so copies run asynchronously, at full bus speed).
///
/// An asynchronous copy out of the buffer may still be reading it after the
/// call returns: call `waitUntilWritable()` before writing into it again.
public final class HostBuffer: @unchecked Sendable {
    /// The first of `count` values.
    public let baseAddress: UnsafeMutablePointer<Float>
    public let count: Int
    /// Recorded by the accelerator after each copy that reads this buffer;
    /// nil where copies finish before they return.
    public let fence: TransferFence?
    private let release: (UnsafeMutablePointer<Float>) -> Void

    /// Wraps memory that `release` frees when the buffer goes away.
    public init(baseAddress: UnsafeMutablePointer<Float>, count: Int, fence: TransferFence?,
                release: @escaping (UnsafeMutablePointer<Float>) -> Void) {
        self.baseAddress = baseAddress
        self.count = count
        self.fence = fence
        self.release = release
    }

    /// Plain 64-byte aligned host memory, zero-filled: the default for accelerators
    /// whose copies complete before they return.
    public convenience init(count: Int) {
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        self.init(baseAddress: raw.assumingMemoryBound(to: Float.self), count: count, fence: nil) { free($0) }
    }

    deinit {
        fence?.wait()
        release(baseAddress)
    }

    /// The first `n` values.
    public func prefix(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(n <= count)
        return UnsafeMutableBufferPointer(start: baseAddress, count: n)
    }

    /// Waits until no queued copy still reads this buffer.
    public func waitUntilWritable() { fence?.wait() }
}

/// The device's record of the first optimizer step that met NaN or ±inf:
/// in the gradients (after the allreduce), or in the weights and optimizer
/// state an update computed. Kernels set it, `update` skips every step once
/// it is set, and the host reads it when it chooses: checking costs no
/// synchronization per step, and nothing non-finite is ever saved.
///
/// Layout: four Float32 slots holding UInt32 bit patterns: [0] the 1-based
/// step (0 = none yet), [1] how many values were non-finite at that step,
/// [2] where (`Source`), [3] the first such value's flat index i, stored as
/// UInt32.max − i so that a clear record is all zeros and an atomic maximum
/// keeps the smallest index.
public struct FiniteGuard: Sendable {
    /// Where the non-finite values were.
    public enum Source: UInt32, Sendable {
        /// In the summed gradients, before the update (nothing was applied).
        case gradients = 1
        /// In the weights or optimizer state an update computed.
        case update = 2
    }

    /// What a set record says.
    public struct Record: Equatable, Sendable {
        /// The 1-based optimizer step.
        public var step: Int
        /// Non-finite values found at that step.
        public var count: Int
        public var source: Source
        /// The first such value's index in the parameter layout (for an
        /// update, in the weights or the same position of a state slot).
        public var firstIndex: Int

        public init(step: Int, count: Int, source: Source, firstIndex: Int) {
            self.step = step
            self.count = count
            self.source = source
            self.firstIndex = firstIndex
        }
    }

    /// The (1 × 4) record on the device.
    public let tensor: Tensor

    /// A clear record on `accelerator`.
    public init(accelerator: any Accelerator) {
        tensor = accelerator.tensor(rows: 1, columns: Self.width)
    }

    /// The record, or nil while every step was finite (waits for queued work).
    public func read(_ accelerator: any Accelerator) -> Record? {
        if accelerator.isHostMemory {
            // Read in place: the CPU trainer asks every step.
            return Self.decode(UnsafePointer(tensor.hostPointer))
        }
        return accelerator.values(tensor).withUnsafeBufferPointer { Self.decode($0.baseAddress!) }
    }

    /// Clears the record, so that later updates apply again.
    public func clear(_ accelerator: any Accelerator) {
        accelerator.fill(tensor, with: 0)
    }

    // MARK: - The layout, for backends and tests

    /// Values in a record.
    public static let width = 4

    /// The 32-bit word a record stores for a step or a count (kernels take it as `unsigned`).
    public static func word(_ value: Int) -> UInt32 { UInt32(truncatingIfNeeded: value) }

    /// A record's values to upload: `nil` for a clear one.
    public static func values(_ record: Record?) -> [Float] {
        guard let record else { return [Float](repeating: 0, count: width) }
        return [word(record.step), word(record.count), record.source.rawValue, UInt32.max - word(record.firstIndex)]
            .map { Float(bitPattern: $0) }
    }

    /// The record in host memory; nil when it is clear.
    public static func decode(_ record: UnsafePointer<Float>) -> Record? {
        let step = record[0].bitPattern
        guard step != 0 else { return nil }
        return Record(step: Int(step), count: Int(record[1].bitPattern),
                      source: Source(rawValue: record[2].bitPattern) ?? .gradients,
                      firstIndex: Int(UInt32.max - record[3].bitPattern))
    }

    /// Whether a record in host memory holds a step.
    public static func isSet(_ record: UnsafePointer<Float>) -> Bool { record[0].bitPattern != 0 }

    /// Writes `record` into a record in host memory.
    public static func set(_ pointer: UnsafeMutablePointer<Float>, _ record: Record) {
        for (i, value) in values(record).enumerated() { pointer[i] = value }
    }
}

/// How an update is guarded: the `FiniteGuard` record it checks and sets,
/// the 1-based step it records, and whether it is only a trial that
/// computes the step's values to check them and writes nothing else.
public struct UpdateGuard {
    public let record: Tensor
    public let step: Int
    public let trial: Bool

    public init(record: Tensor, step: Int, trial: Bool = false) {
        self.record = record
        self.step = step
        self.trial = trial
    }
}
