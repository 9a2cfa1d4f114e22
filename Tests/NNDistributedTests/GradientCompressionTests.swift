// Gradients summed as 16-bit floats: the formats' rounding, error feedback,
// and ranks that all end with the same sums.

import CKernels
import Foundation
import XCTest
import NNCore
import NNDistributed

/// Beside the in-process world's tests, whose helpers (deadline, CPU) they use.
extension ThreadCommunicatorTests {
    func compress(_ values: [Float], residual: inout [Float], _ format: GradientCompression) -> [UInt16] {
        var q = [UInt16](repeating: 0, count: values.count)
        nn_compress_half(values, &residual, &q, values.count, format == .bf16 ? 0 : 1)
        return q
    }

    func expand(_ q: [UInt16], _ format: GradientCompression) -> [Float] {
        var g = [Float](repeating: 0, count: q.count)
        nn_expand_half(q, &g, q.count, format == .bf16 ? 0 : 1)
        return g
    }

    func testTheFormatsRoundToNearestEven() {
        var residual = [Float](repeating: 0, count: 6)
        // bf16 keeps float's top 16 bits, rounded: 1 + 2⁻⁸ is halfway between
        // 1 and 1 + 2⁻⁷ and goes to the even one (1); 1 + 3·2⁻⁸ goes up.
        let bf16 = compress([1, -2, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 3e38, .infinity], residual: &residual, .bf16)
        XCTAssertEqual(bf16, [0x3F80, 0xC000, 0x3F80, 0x3F82, 0x7F62, 0x7F80])
        XCTAssertEqual(residual[2], 0x1p-8, "what rounding lost is kept")
        residual = [Float](repeating: 0, count: 5)
        let fp16 = compress([1, -2, 65504, 1e5, 1e-8], residual: &residual, .fp16)
        XCTAssertEqual(fp16, [0x3C00, 0xC000, 0x7BFF, 0x7C00, 0x0000])
        XCTAssertEqual(residual[4], 1e-8, "a value below fp16's range waits in the residual")
        XCTAssertEqual(expand([0x3C00, 0x3555, 0x0001], .fp16), [1, 0.33325195, 0x1p-24])
        XCTAssertEqual(expand([0x3F80, 0x3EAB], .bf16), [1, 0.333984375])
    }

    func testErrorFeedbackPassesSmallGradientsOnOverSteps() {
        // 1 + 2⁻¹⁰ rounds to 1 in bf16 every time; with the residual fed
        // back, 1,024 steps pass on the whole 2⁻¹⁰ · 1024 = 1 extra.
        var residual: [Float] = [0]
        var passed: Float = 0
        for _ in 0..<1024 { passed += expand(compress([1 + 0x1p-10], residual: &residual, .bf16), .bf16)[0] }
        XCTAssertEqual(passed, 1025, accuracy: 0.01)
        XCTAssertLessThan(abs(residual[0]), 0x1p-7)
    }

    func testRanksEndWithTheSameSumsCloseToFloatSums() throws {
        let count = 5000, ranks = 3
        for format in GradientCompression.allCases {
            let results = try withDeadline { try ThreadCommunicator.run(ranks: ranks) { c -> [Float] in
                let accelerator = Self.makeCPU()
                let reducer = makeGradientReducer(communicator: c, accelerator: accelerator, count: count, compression: format)
                XCTAssertEqual(reducer.name, "allreduce of \(format.rawValue) with error feedback")
                let gradients = accelerator.tensor(rows: 1, columns: count)
                let mine = Self.gradient(rank: c.rank, count: count)
                mine.withUnsafeBufferPointer { accelerator.copy($0, to: gradients) }
                reducer.sum(gradients)
                XCTAssertEqual(reducer.residual?.count, count)
                return accelerator.values(gradients)
            } }
            XCTAssertEqual(results[1], results[0], "\(format)")
            XCTAssertEqual(results[2], results[0], "\(format)")
            var exact = [Float](repeating: 0, count: count)
            for rank in 0..<ranks { for (i, g) in Self.gradient(rank: rank, count: count).enumerated() { exact[i] += g } }
            let worst = zip(results[0], exact).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, format == .bf16 ? 3e-4 : 3e-5, "\(format)")
            XCTAssertGreaterThan(worst, 0, "\(format): the sums were rounded")
        }
    }

    /// A rank's made-up gradients, of the size real ones have.
    static func gradient(rank: Int, count: Int) -> [Float] {
        (0..<count).map { i -> Float in Float(sin(Double(i * (rank + 1)))) * 0.01 }
    }
}

/// The overlapped allreduce's buckets, and its sums against the fused one.
final class OverlappingGradientReducerTests: XCTestCase {
    func testBucketsAreLayersGroupedFromTheEnd() {
        // Layers of 10, 100, 5, 200 and 3 values.
        let layers = [0..<10, 10..<110, 110..<115, 115..<315, 315..<318]
        XCTAssertEqual(OverlappingGradientReducer.plan(layerRanges: layers, bucketValues: 100), [115..<318, 10..<115, 0..<10])
        XCTAssertEqual(OverlappingGradientReducer.plan(layerRanges: layers, bucketValues: 1), layers.reversed())
        XCTAssertEqual(OverlappingGradientReducer.plan(layerRanges: layers, bucketValues: 1000), [0..<318])
    }
}
