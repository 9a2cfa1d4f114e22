// A small strict JSON reader and writer for safetensors headers.
//
// Hand-written rather than JSONSerialization so that reading keeps key order
// and duplicates (to reject them), keeps numbers as their exact text (so
// `1.0` or `1e3` is not silently taken as an integer size), bounds nesting
// depth (a hostile `[[[[…` cannot exhaust the stack), and so that writing is
// byte-for-byte deterministic.

/// A parsed JSON value; objects keep their members in file order.
enum JSONValue {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number's text exactly as written (already checked against the JSON grammar).
    case number(String)
    case bool(Bool)
    case null

    /// A short name of the value's kind for error messages.
    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The value as a non-negative integer, or nil when it is anything else
    /// (a fraction, an exponent, a sign, a string, or too large for `Int`).
    var nonNegativeInteger: Int? {
        guard case let .number(text) = self else { return nil }
        var result = 0
        for byte in text.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = result.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            result = sum
        }
        return result
    }
}

/// Why the header JSON could not be parsed, with the byte offset into the header.
struct JSONSyntaxError: Error {
    var offset: Int
    var reason: String
}

// MARK: - Reading

/// A strict RFC 8259 parser over UTF-8 bytes that are already known to be valid UTF-8.
struct JSONReader {
    /// Deeper nesting than a safetensors header ever needs (it uses 3 levels).
    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    /// Parses one JSON value filling `bytes`, allowing whitespace around it.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var reader = JSONReader(bytes: bytes)
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.position == bytes.count else {
            throw reader.error("unexpected '\(reader.describeCurrent())' after the end of the JSON value")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private func error(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: position, reason: reason) }

    private func describeCurrent() -> String {
        guard let c = current else { return "end of header" }
        return c >= 0x20 && c < 0x7F ? String(UnicodeScalar(c)) : "byte 0x" + String(c, radix: 16)
    }

    private mutating func skipWhitespace() {
        while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { position += 1 }
    }

    private mutating func expect(_ literal: String) throws {
        for byte in literal.utf8 {
            guard current == byte else { throw error("expected '\(literal)'") }
            position += 1
        }
    }

    private mutating func value(depth: Int) throws -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nested more than \(Self.maximumDepth) levels deep") }
        guard let c = current else { throw error("unexpected end of header") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected '\(describeCurrent())'")
        }
    }

    private mutating func object(depth: Int) throws -> JSONValue {
        position += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
            let key = try string()
            skipWhitespace()
            try expect(":")
            skipWhitespace()
            members.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            if current == UInt8(ascii: ",") { position += 1; continue }
            if current == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func array(depth: Int) throws -> JSONValue {
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth + 1))
            skipWhitespace()
            if current == UInt8(ascii: ",") { position += 1; continue }
            if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func number() throws -> String {
        let start = position
        func digits(_ reader: inout JSONReader) -> Int {
            var n = 0
            while let c = reader.current, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { reader.position += 1; n += 1 }
            return n
        }
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else if digits(&self) == 0 {
            throw error("a number needs digits")
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw error("a number needs digits after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw error("a number needs digits in its exponent") }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    private mutating func string() throws -> String {
        position += 1
        var out: [UInt8] = []
        while true {
            guard let c = current else { throw error("unterminated string") }
            switch c {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                guard let e = current else { throw error("unterminated string") }
                position += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out.append(contentsOf: try unicodeEscape())
                default: position -= 1; throw error("invalid escape '\\\(describeCurrent())' in a string")
                }
            case 0..<0x20:
                throw error("unescaped control character 0x\(String(c, radix: 16)) in a string")
            default:
                out.append(c)
                position += 1
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair of two escapes; returns the scalar's UTF-8.
    private mutating func unicodeEscape() throws -> [UInt8] {
        var unit = try hex4()
        if (0xD800..<0xDC00).contains(unit) {
            guard current == UInt8(ascii: "\\") else { throw error("unpaired surrogate in a \\u escape") }
            position += 1
            guard current == UInt8(ascii: "u") else { throw error("unpaired surrogate in a \\u escape") }
            position += 1
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a \\u escape") }
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(unit) {
            throw error("unpaired surrogate in a \\u escape")
        }
        guard let scalar = UnicodeScalar(unit) else { throw error("invalid \\u escape") }
        return Array(String(Character(scalar)).utf8)
    }

    private mutating func hex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let c = current else { throw error("unterminated \\u escape") }
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("a \\u escape needs four hex digits")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }
}

// MARK: - Writing

/// Appends `text` to `out` as a JSON string literal: quotes, backslashes and
/// control characters escaped, everything else as raw UTF-8.
func appendJSONString(_ text: String, to out: inout [UInt8]) {
    let hexDigits = Array("0123456789abcdef".utf8)
    out.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0..<0x20:
            out.append(contentsOf: Array("\\u00".utf8))
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0xF)])
        default: out.append(byte)
        }
    }
    out.append(UInt8(ascii: "\""))
}
