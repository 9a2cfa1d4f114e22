// The one error this module throws.

/// A file that cannot be read or written as asked: missing, damaged, hostile,
/// or refused by the system. `message` is one line that starts with the path
/// and ends with the reason, e.g. `run/model.safetensors: truncated: …`.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The whole line, path first.
    public let message: String

    /// An error with its one-line message. Line breaks and other control
    /// characters in it (from a tensor name the message quotes) are written
    /// as escapes, `\n` or `\u{1B}`, so the message stays one line.
    public init(_ message: String) { self.message = FileError.oneLine(message) }

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
