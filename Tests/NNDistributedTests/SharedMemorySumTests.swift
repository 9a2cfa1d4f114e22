// The shared-memory sum's arithmetic, without a job: the order of its
// additions and how it cuts a buffer.

import CKernels
@testable import NNDistributed
import Foundation
import XCTest

final class SharedMemorySumTests: XCTestCase {
    /// Sums `inputs` element-wise with `nn_sum_buffers` into a new buffer.
    func sum(_ inputs: [[Float]]) -> [Float] {
        let n = inputs.first?.count ?? 0
        var out = [Float](repeating: .nan, count: n)
        let copies = inputs.map { values -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            p.initialize(from: values, count: n)
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        let pointers: [UnsafePointer<Float>?] = copies.map { UnsafePointer($0) }
        pointers.withUnsafeBufferPointer { list in
            out.withUnsafeMutableBufferPointer { nn_sum_buffers(list.baseAddress, inputs.count, $0.baseAddress, n) }
        }
        return out
    }

    func testAddsInRankOrder() {
        // (1e8 + -1e8) + 1 = 1, while 1e8 + (-1e8 + 1) = 0 in Float: the order shows.
        let n = 2500  // more than one block of partial sums
        XCTAssertEqual(sum([[Float](repeating: 1e8, count: n), [Float](repeating: -1e8, count: n), [Float](repeating: 1, count: n)]),
                       [Float](repeating: 1, count: n))
        XCTAssertEqual(sum([[Float](repeating: 1, count: n), [Float](repeating: 1e8, count: n), [Float](repeating: -1e8, count: n)]),
                       [Float](repeating: 0, count: n))
        let four: [[Float]] = (0..<4).map { r in (0..<n).map { Float(r * 1000 + $0) * 0.001 } }
        let expected = (0..<n).map { i in ((four[0][i] + four[1][i]) + four[2][i]) + four[3][i] }
        XCTAssertEqual(sum(four), expected)
        XCTAssertEqual(sum([[1, 2, 3], [4, 5, 6]]), [5, 7, 9])
        XCTAssertEqual(sum([[1, -0.0, 3]]), [1, -0.0, 3])
    }

    func testTheOutputMayBeAnInput() {
        let n = 1500
        var a = (0..<n).map { Float($0) }, b = (0..<n).map { Float(2 * $0) }, c = (0..<n).map { Float(-$0) / 3 }
        let expected = (0..<n).map { i in (a[i] + b[i]) + c[i] }
        a.withUnsafeMutableBufferPointer { pa in
            b.withUnsafeMutableBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    let list: [UnsafePointer<Float>?] = [UnsafePointer(pa.baseAddress), UnsafePointer(pb.baseAddress), UnsafePointer(pc.baseAddress)]
                    list.withUnsafeBufferPointer { nn_sum_buffers($0.baseAddress, 3, pc.baseAddress, n) }
                }
            }
        }
        XCTAssertEqual(c, expected, "the third rank's buffer holds the sum")
    }

    func testPartsCoverTheBufferOnCacheLines() {
        let parts = consecutiveParts(count: 100, ranks: 3)
        XCTAssertEqual(parts, [0..<48, 48..<96, 96..<100])
        XCTAssertEqual(consecutiveParts(count: 10, ranks: 4), [0..<10, 10..<10, 10..<10, 10..<10])
        for (count, ranks) in [(0, 2), (1, 2), (235_146, 2), (5_824_522, 3), (17, 5)] {
            let cut = consecutiveParts(count: count, ranks: ranks)
            XCTAssertEqual(cut.count, ranks)
            XCTAssertEqual(cut.first?.lowerBound, 0)
            XCTAssertEqual(cut.last?.upperBound, count)
            XCTAssertTrue(zip(cut, cut.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            XCTAssertTrue(cut.allSatisfy { $0.lowerBound % 16 == 0 || $0.isEmpty && $0.lowerBound == count })
        }
    }

    func testRoomIsCheckedBeforeAWindowIsMade() {
        XCTAssertTrue(SharedWindow.hasRoom(bytes: 4096, in: NSTemporaryDirectory()))
        XCTAssertFalse(SharedWindow.hasRoom(bytes: 4096, in: "/nonexistent-directory"))
        XCTAssertFalse(SharedWindow.hasRoom(bytes: Int.max / 8, in: NSTemporaryDirectory()), "more than any disk holds")
        XCTAssertFalse(SharedWindow.hasRoom(bytes: Int.max / 2, in: NSTemporaryDirectory()), "four times over overflows")
        XCTAssertEqual(SharedWindow.bytes(count: 1), 4096)
        XCTAssertEqual(SharedWindow.bytes(count: 1024), 4096)
        XCTAssertEqual(SharedWindow.bytes(count: 1025), 8192)
    }
}
