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

/// The device's record of the first optimizer step whose gradients held NaN
/// or ±inf. Kernels set it, `update` skips every step once it is set, and the
/// host reads it when it chooses: checking costs no synchronization per step,
/// and the parameters stay those from before the bad step.
///
/// Layout: two Float32 slots holding UInt32 bit patterns: [0] the 1-based
/// step (0 = none yet), [1] how many values were non-finite at that step.
public struct FiniteGuard: Sendable {
    /// The (1 × 2) record on the device.
    public let tensor: Tensor

    /// A clear record on `accelerator`.
    public init(accelerator: any Accelerator) {
        tensor = accelerator.tensor(rows: 1, columns: Self.width)
    }

    /// The recorded step and count, or nil while every step was finite
    /// (waits for queued work).
    public func read(_ accelerator: any Accelerator) -> (step: Int, count: Int)? {
        if accelerator.isHostMemory {
            // Read in place: the CPU trainer asks every step.
            return Self.decode(UnsafePointer(tensor.hostPointer))
        }
        return accelerator.values(tensor).withUnsafeBufferPointer { Self.decode($0.baseAddress!) }
    }

    // MARK: - The layout, for backends and tests

    /// Values in a record.
    public static let width = 2

    /// The 32-bit word a record stores for a step or a count (kernels take it as `unsigned`).
    public static func word(_ value: Int) -> UInt32 { UInt32(truncatingIfNeeded: value) }

    /// A record holding `step` (0 for a clear one) and `count`, as values to upload.
    public static func values(step: Int, count: Int) -> [Float] {
        [Float(bitPattern: word(step)), Float(bitPattern: word(count))]
    }

    /// The step and count in a record in host memory; nil when it is clear.
    public static func decode(_ record: UnsafePointer<Float>) -> (step: Int, count: Int)? {
        let step = record[0].bitPattern
        return step == 0 ? nil : (Int(step), Int(record[1].bitPattern))
    }

    /// Whether a record in host memory holds a step.
    public static func isSet(_ record: UnsafePointer<Float>) -> Bool { record[0].bitPattern != 0 }

    /// Writes `step` and `count` into a record in host memory.
    public static func set(_ record: UnsafeMutablePointer<Float>, step: Int, count: Int) {
        record[0] = Float(bitPattern: word(step))
        record[1] = Float(bitPattern: word(count))
    }
}
