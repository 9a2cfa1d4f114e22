// "Did you mean …?" for names the user typed: column names, dataset names,
// config keys.

/// The candidate closest to `word` by Levenshtein distance (ignoring case),
/// or nil when none is reasonably close: the distance must be at most a third
/// of the longer name (at least 1) and smaller than `word` itself, so that a
/// one-letter word does not "match" every other one-letter name. Ties go to
/// the earlier candidate. Failing that, a candidate that begins with a word
/// of three or more letters (`fashion` → `fashion-mnist`) is offered.
public func closestMatch(_ word: String, in candidates: [String]) -> String? {
    let target = Array(word.lowercased())
    var best: (candidate: String, distance: Int)?
    for candidate in candidates {
        let other = Array(candidate.lowercased())
        let limit = max(1, (max(target.count, other.count) + 1) / 3)
        let distance = levenshtein(target, other)
        guard distance <= limit, distance < max(target.count, 1) || distance == 0 else { continue }
        if best == nil || distance < best!.distance { best = (candidate, distance) }
    }
    if let best { return best.candidate }
    guard target.count >= 3 else { return nil }
    return candidates.first { $0.lowercased().hasPrefix(word.lowercased()) }
}

/// Edit distance (insertions, deletions, substitutions) with one row of memory.
func levenshtein(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
