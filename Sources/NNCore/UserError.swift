/// A problem the user caused and can fix: bad input, a missing file, a config
/// that does not fit the data. The command line prints `message` as one line
/// and exits with status 2; it never carries a stack trace.
///
/// Messages name the place (file, line, field) first, then what is wrong,
/// then what to do: `train.csv:14: column 'petal_width': 'n/a' is not a number; fix or remove the row`.
public struct UserError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String

    /// An error with its one-line message. Line breaks and other control
    /// characters in it (from a name or cell the message quotes) are written
    /// as escapes, `\n` or `\u{1B}`, so the message stays one line.
    public init(_ message: String) { self.message = UserError.oneLine(message) }

    /// `text` with every line break and control character but tab escaped.
    static func oneLine(_ text: String) -> String {
        func isBreaking(_ scalar: Unicode.Scalar) -> Bool {
            (scalar.value < 0x20 && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029
        }
        guard text.unicodeScalars.contains(where: isBreaking) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result.append(contentsOf: "\\n".unicodeScalars)
            case "\r": result.append(contentsOf: "\\r".unicodeScalars)
            case _ where isBreaking(scalar):
                result.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            default: result.append(scalar)
            }
        }
        return String(result)
    }

    public var description: String { message }
}
