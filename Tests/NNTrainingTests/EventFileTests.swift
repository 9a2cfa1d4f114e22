// TensorBoard event files byte for byte: the protobuf messages against the
// bytes TensorBoard's own protobuf classes produce for the same Event, the
// TFRecord framing against its reference writer, the histogram buckets, and
// a log that cannot write.

import Foundation
import XCTest
@testable import NNTraining

final class EventFileTests: XCTestCase {
    // The expected bytes are `event_pb2.Event(...).SerializeToString()` from
    // the tensorboard package (protobuf 7.36).

    func testScalarEvent() {
        let event = TensorBoardEvent(wallTime: 1.5, step: 3, .summary([.scalar(tag: "loss", 0.25)]))
        XCTAssertEqual(event.encoded(), [
            0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,  // wall_time 1.5
            0x10, 0x03,  // step 3
            0x2a, 0x0d, 0x0a, 0x0b,  // summary { value {
            0x0a, 0x04, 0x6c, 0x6f, 0x73, 0x73,  // tag "loss"
            0x15, 0x00, 0x00, 0x80, 0x3e,  // simple_value 0.25
        ])
    }

    func testFileVersionEvent() {
        let event = TensorBoardEvent(wallTime: 1_700_000_000.25, step: 0, .fileVersion("brain.Event:2"))
        XCTAssertEqual(event.encoded(), [
            0x09, 0x00, 0x00, 0x10, 0x40, 0xfc, 0x54, 0xd9, 0x41,
            0x1a, 0x0d, 0x62, 0x72, 0x61, 0x69, 0x6e, 0x2e, 0x45, 0x76, 0x65, 0x6e, 0x74, 0x3a, 0x32,
        ])
    }

    func testSessionStartEvent() {
        let event = TensorBoardEvent(wallTime: 2, step: 7, .sessionStart)
        XCTAssertEqual(event.encoded(), [
            0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x10, 0x07,
            0x3a, 0x02, 0x08, 0x01,  // session_log (field 7) { status: START }
        ])
    }

    func testHistogramAndZeroScalarEvent() {
        let histogram = Histogram(min: -1, max: 2, count: 3, sum: 1, sumOfSquares: 5, bucketLimits: [0.5, 2], buckets: [1, 2])
        let event = TensorBoardEvent(wallTime: 2, step: 300, .summary([.histogram(tag: "w", histogram), .scalar(tag: "z", 0)]))
        let doubles: (Double) -> [UInt8] = { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
        let histo: [UInt8] = [0x09] + doubles(-1) + [0x11] + doubles(2) + [0x19] + doubles(3) + [0x21] + doubles(1)
            + [0x29] + doubles(5) + [0x32, 0x10] + doubles(0.5) + doubles(2) + [0x3a, 0x10] + doubles(1) + doubles(2)
        XCTAssertEqual(histo.count, 0x51)
        XCTAssertEqual(event.encoded(), [0x09] + doubles(2) + [0x10, 0xac, 0x02, 0x2a, 0x62, 0x0a, 0x56, 0x0a, 0x01, 0x77, 0x2a, 0x51]
            + histo + [0x0a, 0x08, 0x0a, 0x01, 0x7a, 0x15, 0x00, 0x00, 0x00, 0x00])
    }

    func testVarints() {
        var writer = ProtobufWriter()
        writer.varint(0)
        writer.varint(127)
        writer.varint(128)
        writer.varint(300)
        writer.integer(1, -1)
        XCTAssertEqual(writer.bytes, [0x00, 0x7f, 0x80, 0x01, 0xac, 0x02,
                                      0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
    }

    func testTFRecordFraming() {
        // Values from tensorboard.summary.writer.record_writer.
        XCTAssertEqual(TFRecord.maskedCRC(Array("123456789".utf8)), 0xc78a_b0e5)
        XCTAssertEqual(TFRecord.maskedCRC([]), 0xa282_ead8)
        XCTAssertEqual(TFRecord.frame(Array("abc".utf8)), [
            0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // length
            0xb0, 0x99, 0x49, 0x0e,  // masked CRC of the length
            0x61, 0x62, 0x63,
            0x6e, 0x57, 0xf1, 0x21,  // masked CRC of the data
        ])
    }

    func testHistogramBuckets() {
        let values: [Float] = [-1, -0.5, 0, 0.25, 0.5, 2, .nan]
        let histogram = Histogram(values, bucketCount: 3)
        XCTAssertEqual(histogram.min, -1)
        XCTAssertEqual(histogram.max, 2)
        XCTAssertEqual(histogram.count, 6)
        XCTAssertEqual(histogram.sum, 1.25)
        XCTAssertEqual(histogram.sumOfSquares, 1 + 0.25 + 0.0625 + 0.25 + 4)
        XCTAssertEqual(histogram.bucketLimits, [0, 1, 2])
        // (-1 … 0], (0 … 1], (1 … 2]; the minimum counts in the first.
        XCTAssertEqual(histogram.buckets, [3, 2, 1])

        let same = Histogram([0.5, 0.5, 0.5])
        XCTAssertEqual(same.bucketLimits, [0.5])
        XCTAssertEqual(same.buckets, [3])
        XCTAssertEqual(Histogram([]).buckets, [])

        let many = Histogram((0..<1000).map { Float($0) * 0.001 - 0.3 })
        XCTAssertEqual(many.buckets.count, 30)
        XCTAssertEqual(many.buckets.reduce(0, +), 1000)
        XCTAssertEqual(many.bucketLimits.last, many.max)
    }

    func record(epoch: Int) -> EpochRecord {
        let metrics = Metrics(statistics: [0.5 * Double(epoch), 0.75 * Double(epoch), 0, 0], samples: epoch,
                              isClassifier: true, accuracyUnits: 1, outputs: 1)
        return EpochRecord(epoch: epoch, globalStep: 10 * epoch, worldSize: 1, training: metrics, validation: metrics,
                           steps: 10, stepsRun: 10, seconds: 1, samplesPerSecond: 100, learningRate: 0.01)
    }

    /// The records of a TFRecord file, their checksums checked.
    func records(_ path: String) throws -> [[UInt8]] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var records: [[UInt8]] = [], at = 0
        func word<T: FixedWidthInteger>(_ type: T.Type, _ offset: Int) -> T {
            bytes[offset..<offset + MemoryLayout<T>.size].reversed().reduce(0) { $0 << 8 | T($1) }
        }
        while at < bytes.count {
            let length = Int(word(UInt64.self, at))
            XCTAssertEqual(word(UInt32.self, at + 8), TFRecord.maskedCRC(Array(bytes[at..<at + 8])))
            let data = Array(bytes[at + 12..<at + 12 + length])
            XCTAssertEqual(word(UInt32.self, at + 12 + length), TFRecord.maskedCRC(data))
            records.append(data)
            at += 16 + length
        }
        return records
    }

    func testLogWritesOneFilePerDirectoryWithStartAndValues() throws {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: run) }
        var warnings: [String] = []
        let log = TensorBoardLog(runDirectory: run, warn: { warnings.append($0) }, clock: { 1_700_000_000 })
        for epoch in 1...2 { log.observe(.epochEnded(record(epoch: epoch))) }
        XCTAssertEqual(warnings, [])
        for (name, tags) in [("train", ["epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_seconds", "epoch_samples_per_second"]),
                             ("validation", ["epoch_loss", "epoch_accuracy"]), ("steps", ["learning_rate"])] {
            let files = try FileManager.default.contentsOfDirectory(atPath: log.directory + "/" + name)
            XCTAssertEqual(files, ["events.out.tfevents.1700000000.localhost"], name)
            let records = try records(log.directory + "/" + name + "/" + files[0])
            // Version, START, one summary per epoch.
            XCTAssertEqual(records.count, 4, name)
            XCTAssertEqual(records[0], TensorBoardEvent(wallTime: 1_700_000_000, step: 0, .fileVersion("brain.Event:2")).encoded())
            XCTAssertEqual(records[1], TensorBoardEvent(wallTime: 1_700_000_000, step: 1, .sessionStart).encoded())
            for tag in tags {
                XCTAssertNotNil(records[3].firstRange(of: Array(tag.utf8)), "\(name): \(tag)")
            }
            XCTAssertNil(records[3].firstRange(of: Array("epoch_epoch".utf8)))
            XCTAssertNil(records[3].firstRange(of: Array("val_".utf8)))
        }
        // A second process in the same second gets the next second's name.
        let again = TensorBoardLog(runDirectory: run, warn: { warnings.append($0) }, clock: { 1_700_000_000 })
        again.observe(.epochEnded(record(epoch: 3)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: log.directory + "/train").sorted(),
                       ["events.out.tfevents.1700000000.localhost", "events.out.tfevents.1700000001.localhost"])
    }

    func testALogThatCannotWriteWarnsOnceAndStops() throws {
        // A file where the run directory should be: nothing can be created under it.
        let blocker = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: blocker, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: blocker) }
        var warnings: [String] = []
        let log = TensorBoardLog(runDirectory: blocker, warn: { warnings.append($0) })
        XCTAssertTrue(log.wantsParameterSample(epoch: 1, of: 3))
        for epoch in 1...3 { log.observe(.epochEnded(record(epoch: epoch))) }
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains(blocker) ?? false, "\(warnings)")
        XCTAssertFalse(log.wantsParameterSample(epoch: 3, of: 3))
    }
}
