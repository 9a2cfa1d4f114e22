// The storage of a dataset's feature values: a Swift array, or a read-only
// region of a memory-mapped file that several processes map at once, so the
// ranks on one host hold one copy of the data between them and the kernel
// pages it in (and out) as the sampler touches rows.

import NNCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Float values, row-major, held in memory or mapped from a file.
///
/// It reads like an array (`count`, subscripts, iteration, `Array(rows)`).
/// Writing (`withUnsafeMutableBufferPointer`, `removeLast`) works on held
/// values in place and first copies mapped values into memory, so a mapped
/// file is never written.
public struct FloatRows: RandomAccessCollection, Equatable, ExpressibleByArrayLiteral, Sendable {
    private enum Storage: Sendable {
        case held([Float])
        /// `count` values from byte `offset` of `file`.
        case mapped(MappedFile, offset: Int, count: Int)
    }

    private var storage: Storage

    /// Values held in memory.
    public init(_ values: [Float]) { storage = .held(values) }

    public init(arrayLiteral elements: Float...) { storage = .held(elements) }

    /// `count` values starting at byte `offset` of `file` (a multiple of 4).
    public init(mapped file: MappedFile, offset: Int, count: Int) {
        precondition(offset >= 0 && offset % MemoryLayout<Float>.alignment == 0
                     && offset + count * MemoryLayout<Float>.stride <= file.byteCount,
                     "mapped rows outside the file")
        storage = .mapped(file, offset: offset, count: count)
    }

    /// Whether the values are mapped from a file rather than held in memory.
    public var isMapped: Bool {
        if case .mapped = storage { return true }
        return false
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch storage {
        case .held(let values): return values.count
        case .mapped(_, _, let count): return count
        }
    }

    public subscript(position: Int) -> Float {
        switch storage {
        case .held(let values): return values[position]
        case .mapped(let file, let offset, let count):
            precondition(position >= 0 && position < count, "index \(position) outside 0..<\(count)")
            return file.base.load(fromByteOffset: offset + position * MemoryLayout<Float>.stride, as: Float.self)
        }
    }

    /// Calls `body` with the values, without copying them.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        switch storage {
        case .held(let values): return try values.withUnsafeBufferPointer(body)
        case .mapped(let file, let offset, let count):
            let start = (file.base + offset).assumingMemoryBound(to: Float.self)
            return try withExtendedLifetime(file) { try body(UnsafeBufferPointer(start: start, count: count)) }
        }
    }

    /// Calls `body` with the values' bytes, without copying them.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
    }

    /// Calls `body` with writable values; mapped values are copied into memory first.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        var values = takeHeldValues()
        defer { storage = .held(values) }
        return try values.withUnsafeMutableBufferPointer(body)
    }

    /// Tells the kernel that mapped rows will be read in no particular order,
    /// so a page fault reads that page and not the pages around it: for data
    /// larger than memory, where read-ahead only evicts rows still needed.
    /// Nothing for rows held in memory.
    public func adviseRandomAccess() {
        if case .mapped(let file, _, _) = storage { file.adviseRandomAccess() }
    }

    /// Drops the last `k` values.
    public mutating func removeLast(_ k: Int) {
        switch storage {
        case .held:
            var values = takeHeldValues()
            values.removeLast(k)
            storage = .held(values)
        case .mapped(let file, let offset, let count):
            precondition(k >= 0 && k <= count, "cannot remove \(k) of \(count) values")
            storage = .mapped(file, offset: offset, count: count - k)
        }
    }

    /// The values `range`: a copy when held, a view of the same file when mapped.
    public func rows(_ range: Range<Int>) -> FloatRows {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range \(range) outside 0..<\(count)")
        switch storage {
        case .held(let values): return FloatRows(Array(values[range]))
        case .mapped(let file, let offset, _):
            return FloatRows(mapped: file, offset: offset + range.lowerBound * MemoryLayout<Float>.stride, count: range.count)
        }
    }

    public static func == (a: FloatRows, b: FloatRows) -> Bool {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.elementsEqual(y) } }
    }

    /// The held array, leaving the storage empty so the array stays uniquely
    /// referenced while it is changed (a mapped region is copied).
    private mutating func takeHeldValues() -> [Float] {
        switch storage {
        case .held(let values):
            storage = .held([])
            return values
        case .mapped:
            return withUnsafeBufferPointer { Array($0) }
        }
    }
}

/// A whole file mapped read-only and shared (`MAP_SHARED`): processes that
/// map the same file share its pages. Unmapped when the last reference goes.
public final class MappedFile: @unchecked Sendable {
    /// The first byte of the mapping.
    public let base: UnsafeRawPointer
    /// The file's size in bytes when it was mapped.
    public let byteCount: Int
    /// The path it was opened with, for messages.
    public let path: String

    /// Maps the file at `path`; throws a `UserError` naming it when it cannot.
    public convenience init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw UserError("\(path): cannot open (\(FileBytes.describeErrno(errno))); check the path and its permissions")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw UserError("\(path): cannot read (\(FileBytes.describeErrno(errno))); check the file")
        }
        let size = Int(info.st_size)
        guard size > 0 else { throw UserError("\(path): is empty; delete it so it is written again") }
        try self.init(descriptor: descriptor, size: size, path: path)
    }

    /// Maps `size` bytes of the open file `descriptor` (which stays the caller's).
    init(descriptor: Int32, size: Int, path: String) throws {
        guard let address = mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0), address != MAP_FAILED else {
            throw UserError("\(path): cannot map \(size) bytes (\(FileBytes.describeErrno(errno))); check the memory limits (ulimit -v)")
        }
        base = UnsafeRawPointer(address)
        byteCount = size
        self.path = path
    }

    /// `madvise(MADV_RANDOM)` over the whole mapping (see `FloatRows.adviseRandomAccess`).
    public func adviseRandomAccess() {
        _ = madvise(UnsafeMutableRawPointer(mutating: base), byteCount, Int32(MADV_RANDOM))
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
}
