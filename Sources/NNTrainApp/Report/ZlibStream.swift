// zlib's deflate and CRC-32, for the report's PNG images.

import CZlib

enum ZlibStream {
    /// A zlib stream (RFC 1950) of `bytes`.
    static func compress(_ bytes: [UInt8]) -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in compress2(o.baseAddress, &size, i.baseAddress, uLong(bytes.count), 6) }
        }
        precondition(status == Z_OK, "compress2 failed with a buffer of compressBound's size")
        return Array(out[0..<Int(size)])
    }

    /// The CRC-32 (ISO 3309, as PNG uses it) of `bytes`.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        UInt32(bytes.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) })
    }
}
