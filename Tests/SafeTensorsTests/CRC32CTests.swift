import XCTest
import SafeTensors

/// CRC-32C against published check values and a bitwise reference.
final class CRC32CTests: XCTestCase {
    /// Bit-at-a-time CRC-32C, the definition the tables are derived from.
    private func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    func testCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    }

    /// The iSCSI test vectors of RFC 3720, appendix B.4.
    func testRFC3720Vectors() {
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
    }

    func testEmptyInputLeavesTheChecksumUnchanged() {
        XCTAssertEqual(CRC32C.checksum([]), 0)
        XCTAssertEqual(CRC32C.checksum([], continuing: 0x1234_5678), 0x1234_5678)
    }

    func testMatchesBitwiseReferenceAtEveryLengthAndAlignment() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes = (0..<300).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                let slice = Array(bytes[start..<end])
                XCTAssertEqual(CRC32C.checksum(slice), reference(slice), "bytes \(start)..<\(end)")
            }
        }
    }

    func testIncrementalEqualsOneShot() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = CRC32C.checksum(bytes)
        for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let first = CRC32C.checksum(Array(bytes[..<cut]))
            XCTAssertEqual(CRC32C.checksum(Array(bytes[cut...]), continuing: first), whole, "cut at \(cut)")
        }
        var running: UInt32 = 0
        for chunk in stride(from: 0, to: bytes.count, by: 13) {
            running = bytes[chunk..<min(chunk + 13, bytes.count)].withUnsafeBytes { CRC32C.checksum($0, continuing: running) }
        }
        XCTAssertEqual(running, whole)
    }

    func testHex() {
        XCTAssertEqual(CRC32C.hex(0xE306_9283), "e3069283")
        XCTAssertEqual(CRC32C.hex(0x0000_00AB), "000000ab")
    }
}
