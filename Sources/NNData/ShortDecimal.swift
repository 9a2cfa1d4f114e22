// A fast, exact reading of the short decimals that fill most CSV cells
// ("0", "255", "-1.25", "0.0039", "3e-4"). With at most 7 significant
// digits the digits make an integer below 2^24, which a Float holds
// exactly, and a power of ten up to 10^10 is exact in a Float too (5^10 <
// 2^24); one multiplication or division of the two is then rounded once, to
// nearest, which is the correctly rounded value of the decimal (Clinger's
// fast path), the one `Float(String)` returns. Anything else (more digits,
// larger exponents, hexadecimal, inf, nan, stray characters) is left to
// `Float(String)`.

enum ShortDecimal {
    /// The most significant digits read exactly: 10^7 − 1 < 2^24.
    static let maximumDigits = 7
    /// Powers of ten exact in Float, 10^0 … 10^10.
    static let powers: [Float] = (0...10).map { exponent in (0..<exponent).reduce(Float(1)) { value, _ in value * 10 } }

    /// `bytes`' value when they spell a short decimal: an optional sign,
    /// digits with at most one point among or after them (at least one
    /// digit in all), and an optional exponent `e` or `E` with an optional
    /// sign and 1 to 3 digits.
    static func float(_ bytes: UnsafeRawBufferPointer) -> Float? {
        let count = bytes.count
        var i = 0
        var negative = false
        if i < count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        var significand: UInt32 = 0
        var digits = 0  // significant digits, leading zeros not counted
        var anyDigit = false
        var scale = 0   // digits after the point
        var point = false
        while i < count {
            let byte = bytes[i]
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                anyDigit = true
                if significand != 0 || byte != UInt8(ascii: "0") {
                    digits += 1
                    if digits > maximumDigits { return nil }
                    significand = significand * 10 + UInt32(byte - UInt8(ascii: "0"))
                }
                if point { scale += 1 }
            } else if byte == UInt8(ascii: "."), !point {
                point = true
            } else {
                break
            }
            i += 1
        }
        guard anyDigit else { return nil }
        var exponent = 0
        if i < count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            var exponentNegative = false
            if i < count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
                exponentNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            let start = i
            while i < count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9"), i - start < 3 {
                exponent = exponent * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                i += 1
            }
            guard i > start else { return nil }
            if exponentNegative { exponent = -exponent }
        }
        guard i == count else { return nil }
        let value: Float
        if significand == 0 {
            value = 0
        } else {
            let power = exponent - scale
            guard power >= -10 && power <= 10 else { return nil }
            value = power >= 0 ? Float(significand) * powers[power] : Float(significand) / powers[-power]
        }
        return negative ? -value : value
    }
}
