// Device memory and the 2-D views that every op works on.
//
// A multilayer perceptron only ever needs matrices, so a tensor here is a
// row-major (rows × columns) window into an accelerator's storage. Views are
// cheap values: the flat parameter buffer is one storage, and each layer's
// weight and bias are views at an offset into it.

/// Float32 memory owned by an accelerator: `count` values at `address`.
///
/// `address` holds the raw pointer bits in the accelerator's own address space
/// (a host pointer for the CPU, a device pointer for a GPU). The memory is
/// released with the storage object.
public final class DeviceStorage: @unchecked Sendable {
    /// Number of Float32 values.
    public let count: Int
    /// Raw address of the first value in the owning accelerator's address space.
    public let address: UInt
    private let release: @Sendable (UInt) -> Void

    /// Wraps memory that `release` frees when the storage goes away.
    public init(count: Int, address: UInt, release: @escaping @Sendable (UInt) -> Void) {
        self.count = count
        self.address = address
        self.release = release
    }

    deinit { release(address) }

    /// The whole storage as one row.
    public var tensor: Tensor { Tensor(storage: self, offset: 0, rows: 1, columns: count) }
}

/// A row-major (rows × columns) view into device storage.
public struct Tensor: @unchecked Sendable {
    /// The memory this view looks into.
    public let storage: DeviceStorage
    /// Index of the first value within `storage`.
    public let offset: Int
    public let rows: Int
    public let columns: Int

    /// Creates a view; the window must lie inside the storage.
    public init(storage: DeviceStorage, offset: Int, rows: Int, columns: Int) {
        precondition(offset >= 0 && rows >= 0 && columns >= 0 && offset + rows * columns <= storage.count,
                     "tensor view outside its storage")
        self.storage = storage
        self.offset = offset
        self.rows = rows
        self.columns = columns
    }

    /// Number of values in the view.
    @inlinable public var count: Int { rows * columns }

    /// The first `n` rows (a smaller batch in a workspace sized for the largest).
    public func prefix(rows n: Int) -> Tensor {
        Tensor(storage: storage, offset: offset, rows: n, columns: columns)
    }

    /// The same values seen as another shape of equal size.
    public func reshaped(rows: Int, columns: Int) -> Tensor {
        precondition(rows * columns == count)
        return Tensor(storage: storage, offset: offset, rows: rows, columns: columns)
    }

    /// Host pointer to the first value; valid only for host-memory accelerators.
    @inlinable public var hostPointer: UnsafeMutablePointer<Float> {
        UnsafeMutablePointer<Float>(bitPattern: storage.address)!.advanced(by: offset)
    }
}
