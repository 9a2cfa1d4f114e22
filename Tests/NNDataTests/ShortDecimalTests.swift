// The CSV loader's fast path for short decimals must read every cell it
// accepts exactly as Float(String) does, bit for bit.

@testable import NNData
import XCTest

extension ShortDecimal {
    /// `text` read by the fast path, as a CSV cell's bytes are.
    static func float(_ text: String) -> Float? {
        var text = text
        return text.withUTF8 { float(UnsafeRawBufferPointer($0)) }
    }
}

final class ShortDecimalTests: XCTestCase {
    func testCommonCellsTakeTheFastPathAndEqualFloatString() {
        let cells = ["0", "255", "-1.25", "0.0039", "3e-4", "+7", "-0", "-0.000", "1234567", "0.1234567", "9999999e3",
                     "1e10", "1E-10", "0.30000", "00012.5", "7.", ".5", "2.5e+2", "16777217"]
        for cell in cells {
            guard let fast = ShortDecimal.float(cell) else {
                if cell != "16777217" { XCTFail("\(cell) should take the fast path") }
                continue
            }
            XCTAssertEqual(fast.bitPattern, Float(cell)?.bitPattern, cell)
        }
        XCTAssertNil(ShortDecimal.float("16777217"), "8 significant digits are left to Float(String)")
    }

    func testWhatItDoesNotReadIsLeftToFloatString() {
        for cell in ["", "-", ".", "e5", "1e", "1e+", "1.2.3", "1,5", " 1", "1 ", "0x10", "inf", "nan", "1e1000", "12345678",
                     "1e11", "1e-11", "0.00000000001", "1.0000000", "١٢", "--1", "+-1", "1e0001"] {
            XCTAssertNil(ShortDecimal.float(cell), cell)
        }
    }

    func testRandomDecimalsEqualFloatStringBitForBit() {
        var generator = SystemRandomNumberGenerator()
        func digits(_ range: ClosedRange<Int>) -> String {
            String((0..<Int.random(in: range, using: &generator)).map { _ in "0123456789".randomElement(using: &generator)! })
        }
        var accepted = 0
        for _ in 0..<200_000 {
            var cell = ["", "-", "+"].randomElement(using: &generator)! + digits(0...8)
            if Bool.random(using: &generator) { cell += "." + digits(0...8) }
            if Int.random(in: 0..<4, using: &generator) == 0 {
                cell += ["e", "E"].randomElement(using: &generator)! + ["", "-", "+"].randomElement(using: &generator)! + digits(0...3)
            }
            if Int.random(in: 0..<50, using: &generator) == 0 { cell += ["x", " ", ".", "e"].randomElement(using: &generator)! }
            guard let fast = ShortDecimal.float(cell) else { continue }
            accepted += 1
            guard let slow = Float(cell) else { return XCTFail("\(cell): the fast path reads \(fast), Float(String) nothing") }
            if fast.bitPattern != slow.bitPattern { return XCTFail("\(cell): \(fast) against \(slow)") }
        }
        XCTAssertGreaterThan(accepted, 50_000, "most short cells take the fast path")
    }
}
