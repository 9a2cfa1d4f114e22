// Reshaping the raw arguments before the parser sees them, for what the
// parser cannot express: an option whose value is optional, values that start
// with a minus sign, and a misspelt subcommand.

import NNCore
import NNData

enum CommandLineArguments {
    /// The subcommands, which `nntrain WORD …` may start with.
    static let subcommands = ["train", "evaluate", "predict", "selftest", "bench", "help"]

    /// Options that take a value, per long name (a value starting with `-` is
    /// still a value for these, e.g. `--learning-rate -1`).
    static let valued: Set<String> = [
        "--config", "--preset", "--epochs", "--batch-size", "--learning-rate", "--seed", "--run-dir", "--resume",
        "--checkpoint-every", "--keep-checkpoints", "--init-from", "--device", "--model", "--input", "--output",
        "--count", "--iterations", "--input-size", "--directory", "--repetitions", "--threads", "--seconds",
    ]

    /// - `--resume` alone becomes `--resume-latest`; `--resume PATH` stays as it is.
    /// - A valued option followed by a negative number is joined to it, so the
    ///   number is checked as a value instead of being taken for a flag.
    /// - A first word that is no subcommand and no option is a misspelt subcommand.
    static func normalized(_ arguments: [String]) throws -> [String] {
        if let first = arguments.first, !first.hasPrefix("-"), !subcommands.contains(first) {
            let hint = closestMatch(first, in: subcommands).map { "did you mean '\($0)'? " } ?? ""
            throw UserError("unknown command '\(first)'; \(hint)the commands are \(subcommands.dropLast().joined(separator: ", ")) (see nntrain --help)")
        }
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            if argument == "--resume", next == nil || next!.hasPrefix("-") {
                result.append("--resume-latest")
            } else if valued.contains(argument), let next, next.hasPrefix("-"), Double(next) != nil {
                result.append(argument + "=" + next)
                index += 1
            } else {
                result.append(argument)
            }
            index += 1
        }
        return result
    }
}
