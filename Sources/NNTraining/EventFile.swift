// TensorBoard event files: `Event` protocol buffer messages in TFRecord
// framing, the format `tensorboard --logdir` reads.
//
// The few messages needed are encoded by hand (a clean build of the
// swift-protobuf runtime costs more than this file). Field numbers are those
// of TensorBoard's `event.proto`, `summary.proto` and `histogram.proto`:
//
//   Event          wall_time 1 (double), step 2 (int64), file_version 3
//                  (string), summary 5 (Summary), session_log 7 (SessionLog)
//   SessionLog     status 1 (enum: START = 1), checkpoint_path 2, msg 3
//   Summary        value 1 (repeated Value)
//   Summary.Value  tag 1 (string), simple_value 2 (float), histo 5
//   HistogramProto min 1, max 2, num 3, sum 4, sum_squares 5 (doubles),
//                  bucket_limit 6, bucket 7 (packed doubles)
//
// As proto3 does, scalar fields at their default value are left out, except
// members of a oneof (file_version, summary, session_log, simple_value,
// histo), which are written whenever set.

import Foundation
import NNCore
import SafeTensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The protocol buffer wire format, just the parts event files use.
public struct ProtobufWriter {
    /// What is written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty message.
    public init() {}

    /// How a field's value is laid out: 0 varint, 1 eight bytes, 2 length
    /// and bytes, 5 four bytes.
    public enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    /// A base-128 varint, low groups first.
    public mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// A field's key: its number and wire type.
    public mutating func key(_ field: Int, _ type: WireType) {
        varint(UInt64(field) << 3 | type.rawValue)
    }

    /// An int64 or enum field (negative values as ten-byte two's complement).
    public mutating func integer(_ field: Int, _ value: Int64) {
        key(field, .varint)
        varint(UInt64(bitPattern: value))
    }

    /// A double field, eight bytes little-endian.
    public mutating func double(_ field: Int, _ value: Double) {
        key(field, .fixed64)
        littleEndian(value.bitPattern)
    }

    /// A float field, four bytes little-endian.
    public mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        littleEndian(value.bitPattern)
    }

    /// A string field, UTF-8.
    public mutating func string(_ field: Int, _ value: String) {
        lengthDelimited(field, Array(value.utf8))
    }

    /// An embedded message field, written by `body`.
    public mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        lengthDelimited(field, inner.bytes)
    }

    /// A packed repeated double field: one length, then the values.
    public mutating func packedDoubles(_ field: Int, _ values: [Double]) {
        key(field, .lengthDelimited)
        varint(UInt64(values.count * 8))
        for value in values { littleEndian(value.bitPattern) }
    }

    private mutating func lengthDelimited(_ field: Int, _ content: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(content.count))
        bytes += content
    }

    private mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

/// A histogram as TensorBoard's `HistogramProto` holds it: bucket `i`
/// counts the values in (`bucketLimits[i - 1]`, `bucketLimits[i]`], the first
/// from `min`.
public struct Histogram: Equatable, Sendable {
    public var min: Double, max: Double
    /// How many values, their sum, and the sum of their squares.
    public var count: Double, sum: Double, sumOfSquares: Double
    /// Right edges, rising; the last is `max`.
    public var bucketLimits: [Double]
    /// Values per bucket.
    public var buckets: [Double]

    /// A histogram of given figures.
    public init(min: Double, max: Double, count: Double, sum: Double, sumOfSquares: Double,
                bucketLimits: [Double], buckets: [Double]) {
        self.min = min
        self.max = max
        self.count = count
        self.sum = sum
        self.sumOfSquares = sumOfSquares
        self.bucketLimits = bucketLimits
        self.buckets = buckets
    }

    /// Buckets of equal width over [min, max] (one bucket when every value
    /// is the same, none without values); non-finite values are left out.
    public init(_ values: [Float], bucketCount: Int = 30) {
        let finite = values.filter(\.isFinite).map(Double.init)
        let low = finite.min() ?? 0, high = finite.max() ?? 0
        var sum = 0.0, squares = 0.0
        for value in finite {
            sum += value
            squares += value * value
        }
        let n = finite.isEmpty ? 0 : high > low ? Swift.max(bucketCount, 1) : 1
        let width = (high - low) / Double(Swift.max(n, 1))
        let limits = n == 0 ? [] : (1..<n).map { low + Double($0) * width } + [high]
        var counts = [Double](repeating: 0, count: n)
        for value in finite {
            // The equal-width index, moved to the bucket whose edges hold
            // the value when rounding put it one off.
            var index = width > 0 ? Swift.min(Int((value - low) / width), n - 1) : 0
            while index > 0 && value <= limits[index - 1] { index -= 1 }
            while index < n - 1 && value > limits[index] { index += 1 }
            counts[index] += 1
        }
        self.init(min: low, max: high, count: Double(finite.count), sum: sum, sumOfSquares: squares,
                  bucketLimits: limits, buckets: counts)
    }

    /// The `HistogramProto` fields.
    func encode(into writer: inout ProtobufWriter) {
        for (field, value) in [(1, min), (2, max), (3, count), (4, sum), (5, sumOfSquares)] where value != 0 {
            writer.double(field, value)
        }
        if !bucketLimits.isEmpty { writer.packedDoubles(6, bucketLimits) }
        if !buckets.isEmpty { writer.packedDoubles(7, buckets) }
    }
}

/// One TensorBoard `Event` message.
public struct TensorBoardEvent: Sendable {
    /// One tagged value of a summary.
    public enum Value: Sendable {
        case scalar(tag: String, Float)
        case histogram(tag: String, Histogram)
    }

    /// What the event carries (its oneof).
    public enum Content: Sendable {
        /// The first record of every file: `brain.Event:2`.
        case fileVersion(String)
        case summary([Value])
        /// `SessionLog` with status START: TensorBoard drops the data of
        /// earlier files at this step and later (a restart from a checkpoint).
        case sessionStart
    }

    /// Seconds since 1970.
    public var wallTime: Double
    public var step: Int
    public var content: Content

    public init(wallTime: Double, step: Int, _ content: Content) {
        self.wallTime = wallTime
        self.step = step
        self.content = content
    }

    /// The message's bytes.
    public func encoded() -> [UInt8] {
        var writer = ProtobufWriter()
        if wallTime != 0 { writer.double(1, wallTime) }
        if step != 0 { writer.integer(2, Int64(step)) }
        switch content {
        case .fileVersion(let version):
            writer.string(3, version)
        case .summary(let values):
            writer.message(5) { summary in
                for value in values {
                    summary.message(1) { entry in
                        switch value {
                        case .scalar(let tag, let number):
                            entry.string(1, tag)
                            entry.float(2, number)
                        case .histogram(let tag, let histogram):
                            entry.string(1, tag)
                            entry.message(5) { histogram.encode(into: &$0) }
                        }
                    }
                }
            }
        case .sessionStart:
            writer.message(7) { $0.integer(1, 1) }
        }
        return writer.bytes
    }
}

/// TFRecord framing: each record is its length (uint64, little-endian), the
/// masked CRC-32C of those eight bytes, the data, and the masked CRC-32C of
/// the data.
public enum TFRecord {
    /// CRC-32C rotated right by 15 bits plus 0xa282ead8, as TFRecord stores it.
    public static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = CRC32C.checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// One record around `data`.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { length += $0 }
        var record = length
        withUnsafeBytes(of: maskedCRC(length).littleEndian) { record += $0 }
        record += data
        withUnsafeBytes(of: maskedCRC(data).littleEndian) { record += $0 }
        return record
    }
}

/// An events file being written: `DIR/events.out.tfevents.SECONDS.HOST`,
/// opened new (never appended to), each `write` one `write(2)` call, so a
/// live TensorBoard sees every batch of records as soon as it is written.
public final class EventFile {
    /// The file's path.
    public let path: String
    private var descriptor: Int32

    /// Creates `directory` if needed and a new events file in it, starting
    /// with the file-version record. A name already taken (a restart within
    /// the same second) moves on to the next second, so names still sort in
    /// the order the files were written, which is the order TensorBoard reads them.
    public init(directory: String, host: String, wallTime: Double) throws {
        try Self.makeDirectories(directory)
        let safeHost = String(host.map { $0 == "/" || $0.isWhitespace ? "_" : $0 })
        var seconds = Int(wallTime)
        var candidate = "", fd: Int32 = -1
        for _ in 0..<1000 {
            candidate = "\(directory)/events.out.tfevents.\(seconds).\(safeHost.isEmpty ? "localhost" : safeHost)"
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
            seconds += 1
        }
        guard fd >= 0 else { throw UserError("\(candidate): cannot create the file (\(String(cString: strerror(errno))))") }
        path = candidate
        descriptor = fd
        try write([TensorBoardEvent(wallTime: wallTime, step: 0, .fileVersion("brain.Event:2"))])
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// `mkdir -p`, with the system's reason when a part cannot be made.
    static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            var status = stat()
            if stat(prefix, &status) != 0 {
                if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                    throw UserError("\(prefix): cannot create the directory (\(String(cString: strerror(errno))))")
                }
            } else if status.st_mode & S_IFMT != S_IFDIR {
                throw UserError("\(prefix): cannot create the directory (a file of that name exists)")
            }
            prefix += "/"
        }
    }

    /// Appends the events as records in one write.
    public func write(_ events: [TensorBoardEvent]) throws {
        let bytes = events.flatMap { TFRecord.frame($0.encoded()) }
        if let code = bytes.withUnsafeBytes({ AtomicFile.writeAll(descriptor, $0) }) {
            throw UserError("\(path): cannot write (\(String(cString: strerror(code))))")
        }
    }
}
