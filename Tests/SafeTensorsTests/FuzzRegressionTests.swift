// Inputs that once broke the reader (see Tests/Fuzz and scripts/fuzz), each
// now refused with one error line naming the file.

import SafeTensors
import XCTest

final class FuzzRegressionTests: XCTestCase {
    /// The first finding of fuzz-safetensors: a tensor named "aA\n" (escaped
    /// in the JSON) without a "shape"; the message quoting the name used to
    /// span two lines.
    func testMessageQuotingANameWithALineBreakStaysOneLine() throws {
        let header = Array(#"{"a\u0041\n":{"dtype":"F32","s^ape":[1],"data_offsets":[0,4]}}"#.utf8)
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header + [0, 0, 0xC0, 0x3F]
        XCTAssertThrowsError(try SafeTensors.decode(bytes, path: "m.safetensors")) { error in
            let message = (error as? FileError)?.message ?? "not a FileError: \(error)"
            XCTAssertEqual(message, #"m.safetensors: tensor 'aA\n' has no "shape" in the header; the file is damaged"#)
        }
    }

    /// Every control character but tab is escaped, so no name can break the
    /// line or reach the terminal as a control sequence.
    func testControlCharactersInMessagesAreEscaped() {
        XCTAssertEqual(FileError("p: 'a\r\nb\u{1B}[31m\tc\u{2028}'").message, #"p: 'a\r\nb\u{1B}[31m"# + "\t" + #"c\u{2028}'"#)
        XCTAssertEqual(FileError("p: plain").message, "p: plain")
    }
}
