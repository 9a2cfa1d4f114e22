// Reading docs/tour.md's command blocks and matching a command's output
// against the output the page shows, "in shape": the words exactly, the
// numbers within a tolerance, timings free, `...` for any number of lines.
// The rules are written out at the top of docs/tour.md.

import Foundation

/// How one block's output is compared.
struct TourOptions: Equatable {
    /// A number matches when it is within `relative` of the expected value
    /// (as a share of it) or within `absolute` of it.
    var relative = 0.05
    var absolute = 0.02
    /// Every number in the block is free (timing-dependent blocks).
    var numbersFree = false
    /// Lines whose expected text contains one of these have free numbers.
    var freeNumbersIn: [String] = []
    /// A line whose expected text contains one of these matches any line that contains it too;
    /// by default nntrain's `compute:` line, which names the machine's cores, threads and devices.
    var anyLineWith: [String] = ["compute: "]

    /// Applies one `<!-- tour: … -->` comment's directives, separated by `;`:
    /// `tolerance R` or `tolerance R A`, `numbers free`, `free "TEXT"`, `any "TEXT"`.
    mutating func apply(_ directives: String) throws {
        for directive in directives.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !directive.isEmpty {
            let words = directive.split(separator: " ", maxSplits: 1).map(String.init)
            switch words[0] {
            case "tolerance":
                let values = (words.count > 1 ? words[1] : "").split(separator: " ").compactMap { Double($0) }
                guard (1...2).contains(values.count) else { throw TourError("tolerance wants 1 or 2 numbers: '\(directive)'") }
                relative = values[0]
                if values.count == 2 { absolute = values[1] }
            case "numbers" where words.count == 2 && words[1] == "free":
                numbersFree = true
            case "free", "any":
                guard words.count == 2, words[1].count >= 2, words[1].hasPrefix("\""), words[1].hasSuffix("\"") else {
                    throw TourError("\(words[0]) wants a quoted text: '\(directive)'")
                }
                let text = String(words[1].dropFirst().dropLast())
                if words[0] == "free" { freeNumbersIn.append(text) } else { anyLineWith.append(text) }
            default:
                throw TourError("unknown tour directive '\(directive)' (valid: tolerance R [A], numbers free, free \"TEXT\", any \"TEXT\")")
            }
        }
    }
}

struct TourError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One `$ ` command of a block and the lines it should print.
struct TourCommand {
    var command: String
    var expected: [String]
    /// The command's line in the document (1-based).
    var line: Int
}

/// One ```console block.
struct TourBlock {
    var commands: [TourCommand]
    var options: TourOptions
    var line: Int
}

enum TourDocument {
    /// The ```console blocks of `text`, each with the options of the
    /// `<!-- tour: … -->` comments just before it (only blank lines between).
    static func parse(_ text: String) throws -> [TourBlock] {
        var blocks: [TourBlock] = []
        var pending = TourOptions()
        var current: TourBlock?
        var otherFence = false
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = trimTrailing(raw), number = index + 1
            if var block = current {
                if line == "```" {
                    blocks.append(block)
                    current = nil
                } else if line.hasPrefix("$ ") {
                    block.commands.append(TourCommand(command: String(line.dropFirst(2)), expected: [], line: number))
                    current = block
                } else {
                    guard !block.commands.isEmpty else { throw TourError("line \(number): output before the block's first '$ ' command") }
                    block.commands[block.commands.count - 1].expected.append(line)
                    current = block
                }
            } else if otherFence {
                if line.hasPrefix("```") { otherFence = false }
            } else if line == "```console" {
                current = TourBlock(commands: [], options: pending, line: number)
                pending = TourOptions()
            } else if line.hasPrefix("```") {
                otherFence = true
                pending = TourOptions()
            } else if line.hasPrefix("<!-- tour:") {
                guard line.hasSuffix("-->") else { throw TourError("line \(number): a tour comment must end on its line") }
                try pending.apply(String(line.dropFirst("<!-- tour:".count).dropLast(3)))
            } else if !line.trimmingCharacters(in: .whitespaces).isEmpty {
                pending = TourOptions()  // directives bind to the block right after them
            }
        }
        if current != nil { throw TourError("a ```console block is not closed") }
        return blocks
    }

    static func trimTrailing(_ line: String) -> String {
        var line = Substring(line)
        while let last = line.last, last == " " || last == "\t" || last == "\r" { line = line.dropLast() }
        return String(line)
    }
}

/// A line cut into words and numbers.
enum TourToken: Equatable {
    case text(String)
    case number(Double, timing: Bool)
}

enum TourMatcher {
    /// Why `actual` does not match `expected`, or nil when it does.
    static func mismatch(expected: [String], actual: [String], options: TourOptions) -> String? {
        let expected = expected.map(TourDocument.trimTrailing), actual = actual.map(TourDocument.trimTrailing)
        var memo: [Int: Bool] = [:]
        // The furthest actual line reached, and the expected line that failed there.
        var furthest = (actual: -1, expected: 0)
        func matches(_ i: Int, _ j: Int) -> Bool {
            let key = i * (actual.count + 1) + j
            if let known = memo[key] { return known }
            let result: Bool
            if i == expected.count {
                result = j == actual.count
                if !result && j > furthest.actual { furthest = (j, i) }
            } else if expected[i] == "..." {
                result = (j...actual.count).contains { matches(i + 1, $0) }
            } else if j < actual.count && lineMatches(expected[i], actual[j], options) {
                result = matches(i + 1, j + 1)
            } else {
                if j > furthest.actual || (j == furthest.actual && i > furthest.expected) { furthest = (j, i) }
                result = false
            }
            memo[key] = result
            return result
        }
        if matches(0, 0) { return nil }
        let want = furthest.expected < expected.count ? "'\(expected[furthest.expected])'" : "the end of the output"
        let got = furthest.actual >= 0 && furthest.actual < actual.count ? "'\(actual[furthest.actual])'" : "the end of the output"
        return "expected line \(furthest.expected + 1) \(want), got output line \(furthest.actual + 1) \(got)"
    }

    /// Whether one output line matches one expected line.
    static func lineMatches(_ expected: String, _ actual: String, _ options: TourOptions) -> Bool {
        if let text = options.anyLineWith.first(where: { expected.contains($0) }) { return actual.contains(text) }
        let free = options.numbersFree || options.freeNumbersIn.contains { expected.contains($0) }
        let want = tokens(expected), got = tokens(actual)
        guard want.count == got.count else { return false }
        for (w, g) in zip(want, got) {
            switch (w, g) {
            case (.text(let a), .text(let b)):
                if a != b { return false }
            case (.number(let a, let timing), .number(let b, _)):
                if free || timing { continue }
                if !(abs(a - b) <= max(options.relative * abs(a), options.absolute)) { return false }
            default:
                return false
            }
        }
        return true
    }

    /// Cuts a line into text and numbers. A number is digits with an
    /// optional fraction and exponent; a leading `-` or `+` belongs to it
    /// unless a letter, digit, `.` or `_` comes before the sign. A number
    /// followed by `s`, `ms` (not followed by a letter, so `ms/step` too) or
    /// ` samples/s` is a timing.
    static func tokens(_ line: String) -> [TourToken] {
        let chars = Array(line)
        var result: [TourToken] = []
        var text = ""
        func isWordChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "." || c == "_" }
        func isDigit(_ k: Int) -> Bool { k < chars.count && chars[k].isASCII && chars[k].isNumber }
        var k = 0
        while k < chars.count {
            let previous: Character? = k > 0 ? chars[k - 1] : nil
            var isNumber = false
            if isDigit(k) {
                isNumber = true
            } else if (chars[k] == "-" || chars[k] == "+") && isDigit(k + 1) && !(previous.map(isWordChar) ?? false) {
                isNumber = true
            } else if chars[k] == "." && isDigit(k + 1) && !(previous.map { $0.isLetter || $0.isNumber } ?? false) {
                isNumber = true
            }
            guard isNumber else {
                text.append(chars[k])
                k += 1
                continue
            }
            if !text.isEmpty { result.append(.text(text)); text = "" }
            let begin = k
            if chars[k] == "-" || chars[k] == "+" { k += 1 }
            while isDigit(k) { k += 1 }
            if k < chars.count && chars[k] == "." && isDigit(k + 1) {
                k += 1
                while isDigit(k) { k += 1 }
            }
            if k < chars.count && (chars[k] == "e" || chars[k] == "E") {
                var e = k + 1
                if e < chars.count && (chars[e] == "-" || chars[e] == "+") { e += 1 }
                if isDigit(e) {
                    k = e
                    while isDigit(k) { k += 1 }
                }
            }
            let literal = String(chars[begin..<k])
            let rest = String(chars[k...])
            result.append(.number(Double(literal) ?? .nan, timing: isTiming(rest)))
        }
        if !text.isEmpty { result.append(.text(text)) }
        return result
    }

    /// Whether the text after a number makes it a timing.
    static func isTiming(_ rest: String) -> Bool {
        func unit(_ u: String) -> Bool {
            guard rest.hasPrefix(u) else { return false }
            let after = rest.dropFirst(u.count).first
            return !(after?.isLetter ?? false)
        }
        return unit("s") || unit("ms") || unit("µs") || rest.hasPrefix(" samples/s")
    }
}
