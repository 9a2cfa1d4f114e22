// A gzip IDX file is decompressed only as far as its header allows: a file
// whose header promises a few images but that inflates to far more stops
// with an error after the promised bytes, without inflating the rest.

import CZlib
import Foundation
import NNCore
@testable import NNData
import XCTest

final class GzipBoundTests: XCTestCase {
    /// Gzip of `head` followed by `zeros` zero bytes, compressed in a stream
    /// so the test never holds the inflated size.
    func gzipWithZeros(_ head: [UInt8], zeros: Int) -> [UInt8] {
        var stream = z_stream()
        precondition(deflateInit2_(&stream, Z_BEST_SPEED, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY,
                                   zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK)
        defer { deflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        func feed(_ input: [UInt8], flush: Int32) {
            var input = input
            input.withUnsafeMutableBufferPointer { source in
                stream.next_in = source.baseAddress
                stream.avail_in = UInt32(source.count)
                repeat {
                    chunk.withUnsafeMutableBufferPointer { out in
                        stream.next_out = out.baseAddress
                        stream.avail_out = UInt32(out.count)
                        _ = deflate(&stream, flush)
                        output += out[0..<(out.count - Int(stream.avail_out))]
                    }
                } while stream.avail_out == 0
            }
        }
        feed(head, flush: Z_NO_FLUSH)
        let block = [UInt8](repeating: 0, count: 1 << 20)
        var left = zeros
        while left > 0 {
            let n = min(left, block.count)
            feed(Array(block[0..<n]), flush: left == n ? Z_FINISH : Z_NO_FLUSH)
            left -= n
        }
        return output
    }

    func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    func testInflatingPastTheHeadersPromiseStopsEarly() throws {
        let dir = try TemporaryDirectory()
        // The header promises 3 images of 2×3 (18 bytes); the stream holds 768 MiB more.
        let head = idxImages(count: 3, rows: 2, columns: 3, pixels: [UInt8](repeating: 1, count: 18))
        let compressed = gzipWithZeros(head, zeros: 768 << 20)
        XCTAssertLessThan(compressed.count, 8 << 20, "zeros compress about 1000:1")
        let images = try dir.write(compressed, to: "bomb.gz")
        let labels = try dir.write(idxLabels([1, 2, 3]), to: "labels")
        let before = peakResidentBytes()
        let start = Date()
        assertUserError(try IDXLoader.load(images: images, labels: labels),
                        contains: [images, "decompresses to more than the 34 bytes its IDX header allows (3 images of 2×3)",
                                   "download or copy it again"])
        let seconds = Date().timeIntervalSince(start)
        let grown = peakResidentBytes() - before
        print("bounded gzip: refused after \(seconds) s, peak memory grew by \(grown >> 20) MiB")
        XCTAssertLessThan(grown, 128 << 20, "the whole stream was inflated")
        XCTAssertLessThan(seconds, 2)
    }

    func testExactFileStillLoadsAndAShortOneIsTruncated() throws {
        let dir = try TemporaryDirectory()
        let pixels = (0..<18).map { UInt8($0) }
        let images = try dir.write(gzip(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels)), to: "ok.gz")
        let labels = try dir.write(gzip(idxLabels([1, 2, 3])), to: "labels.gz")
        XCTAssertEqual(Array(try IDXLoader.load(images: images, labels: labels).features), pixels.map(Float.init))
        // One byte too many is already past the promise.
        let long = try dir.write(gzip(idxImages(count: 3, rows: 2, columns: 3, pixels: pixels + [0])), to: "long.gz")
        assertUserError(try IDXLoader.load(images: long, labels: labels), contains: ["decompresses to more than the 34 bytes"])
        let short = try dir.write(gzip(idxImages(count: 3, rows: 2, columns: 3, pixels: Array(pixels.prefix(10)))), to: "short.gz")
        assertUserError(try IDXLoader.load(images: short, labels: labels), contains: ["truncated"])
        // The header's own shape is read from the first bytes alone.
        XCTAssertEqual(IDXLoader.shape(images: images).map { [$0.count, $0.featureCount] }, [3, 6])
        XCTAssertEqual(IDXLoader.shape(images: images, limit: 2).map { [$0.count, $0.featureCount] }, [2, 6])
        XCTAssertNil(IDXLoader.shape(images: labels), "not an images file")
    }

    /// zlib takes at most 4 GiB of input at a time; larger files are handed
    /// over in pieces. Pieces of a few bytes stand in for 4 GiB ones here:
    /// the output, member boundaries and truncation are the same as in one piece.
    func testCompressedInputHandedOverInPiecesInflatesTheSame() throws {
        let first = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 13) }
        let second = Array("a second member".utf8)
        let members = gzip(first) + gzip(second)
        for piece in [1, 2, 7, 4096, FileBytes.largestInputPiece] {
            XCTAssertEqual(try FileBytes.gunzip(members, path: "p", role: "file", inputPiece: piece), first + second, "pieces of \(piece)")
            assertUserError(try FileBytes.gunzip(Array(members.prefix(members.count / 3)), path: "p", role: "file", inputPiece: piece),
                            contains: ["ends early"])
        }
    }
}
