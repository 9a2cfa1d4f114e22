// Writes a Swift file that holds text files as string literals, so that a
// binary carries them without a resource bundle beside it (the CUDA kernels
// must travel inside the one static `nntrain` file that gpu-check packs).
//
//   EmbedSources OUTPUT [--search DIR]... FILE...
//
// Embeds each FILE under its file name, and every file a FILE names with
// `#include "NAME"` (transitively) under NAME, looked up next to the
// including file and then in each search directory. The output declares
// `embeddedSources: [String: String]`. A missing include fails the build.

import Foundation

/// Stops the build step with a one-line message.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("EmbedSources: \(message)\n".utf8))
    exit(1)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else { fail("usage: EmbedSources OUTPUT [--search DIR]... FILE...") }
let output = arguments.removeFirst()
var searchDirectories: [URL] = []
var roots: [URL] = []
while !arguments.isEmpty {
    let argument = arguments.removeFirst()
    if argument == "--search" {
        guard !arguments.isEmpty else { fail("--search needs a directory") }
        searchDirectories.append(URL(fileURLWithPath: arguments.removeFirst(), isDirectory: true))
    } else {
        roots.append(URL(fileURLWithPath: argument))
    }
}

/// The names in a file's `#include "NAME"` lines (angle-bracket includes are the compiler's own).
func quotedIncludes(_ text: String) -> [String] {
    text.split(separator: "\n").compactMap { line in
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        guard trimmed.hasPrefix("#") else { return nil }
        let directive = trimmed.dropFirst().drop { $0 == " " || $0 == "\t" }
        guard directive.hasPrefix("include") else { return nil }
        let rest = directive.dropFirst("include".count).drop { $0 == " " || $0 == "\t" }
        guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else { return nil }
        return String(rest[rest.index(after: rest.startIndex)..<close])
    }
}

func read(_ url: URL) -> String {
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { fail("cannot read \(url.path) as UTF-8") }
    return text
}

var embedded: [(name: String, text: String)] = []
var pending = roots.map { (name: $0.lastPathComponent, url: $0) }
while !pending.isEmpty {
    let (name, url) = pending.removeFirst()
    if embedded.contains(where: { $0.name == name }) { continue }
    let text = read(url)
    embedded.append((name, text))
    for include in quotedIncludes(text) {
        let candidates = [url.deletingLastPathComponent()] + searchDirectories
        guard let found = candidates.map({ $0.appendingPathComponent(include) })
            .first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            fail("\(url.lastPathComponent) includes \"\(include)\", which is in none of: \(candidates.map(\.path).joined(separator: ", "))")
        }
        pending.append((include, found))
    }
}

/// The text as a raw multi-line literal, with enough `#`s that nothing inside ends it or escapes.
func literal(_ text: String) -> String {
    var hashes = "#"
    while text.contains("\"\"\"" + hashes) || text.contains("\\" + hashes) { hashes += "#" }
    return "\(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes)"
}

var swift = "// Generated at build time by EmbedSources from \(embedded.map(\.name).joined(separator: ", ")).\n\n"
swift += "/// Text files built into the binary, by the name they are included under.\n"
swift += "let embeddedSources: [String: String] = [\n"
for (name, text) in embedded {
    swift += "    \"\(name)\": \(literal(text)),\n"
}
swift += "]\n"
do {
    try swift.write(toFile: output, atomically: true, encoding: .utf8)
} catch {
    fail("cannot write \(output): \(error)")
}
