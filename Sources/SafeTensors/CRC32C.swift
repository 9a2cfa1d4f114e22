// CRC-32C (Castagnoli), the checksum iSCSI, ext4 and many storage formats use:
// reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF, final xor
// 0xFFFFFFFF. Check value: CRC-32C("123456789") = 0xE3069283.
//
// Slicing-by-8: eight 256-entry tables let the loop consume eight bytes per
// step with eight independent lookups instead of eight dependent ones.
// Table k maps a byte to the CRC contribution of that byte followed by k zero
// bytes, so one 64-bit word folds in as the xor of eight lookups.

/// The CRC-32C (Castagnoli) checksum, table-driven with slicing-by-8.
///
/// One-shot: `CRC32C.checksum(bytes)`. Incremental: feed the previous result
/// back in, `checksum(b, continuing: checksum(a)) == checksum(a + b)`.
public enum CRC32C {
    /// The reflected Castagnoli polynomial.
    public static let polynomial: UInt32 = 0x82F6_3B78

    /// Eight tables of 256 entries, table k at `k * 256`.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
            }
            t[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = t[(k - 1) * 256 + byte]
                t[k * 256 + byte] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    // MARK: - Checksums

    /// The CRC-32C of `bytes`; pass an earlier result as `continuing` to extend it
    /// over data that follows (the default 0 starts a new checksum).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return previous }
        var crc = ~previous
        let count = bytes.count
        tables.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            var i = 0
            while i + 8 <= count {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let low = UInt32(truncatingIfNeeded: word) ^ crc
                let high = UInt32(truncatingIfNeeded: word >> 32)
                crc = t[7 * 256 + Int(low & 0xFF)]
                    ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)]
                    ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ t[Int(high >> 24)]
                i += 8
            }
            while i < count {
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                crc = (crc >> 8) ^ t[Int((crc ^ UInt32(byte)) & 0xFF)]
                i += 1
            }
        }
        return ~crc
    }

    /// The CRC-32C of a byte array; see `checksum(_:continuing:)`.
    public static func checksum(_ bytes: [UInt8], continuing previous: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: previous) }
    }

    /// `value` as 8 lowercase hexadecimal digits, the form stored in file headers.
    public static func hex(_ value: UInt32) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 {
            out[i] = digits[Int((value >> UInt32(28 - 4 * i)) & 0xF)]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
