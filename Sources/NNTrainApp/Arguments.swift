// Reshaping the raw arguments before the parser sees them, for what the
// parser cannot express: an option whose value is optional, and a misspelt
// subcommand. (Numeric options take a value that starts with a minus sign
// themselves: they parse their next argument unconditionally.)

import NNCore
import NNData

enum CommandLineArguments {
    /// The subcommands, which `nntrain WORD …` may start with (and `help`).
    static let subcommands = NNTrain.configuration.subcommands.map { $0._commandName } + ["help"]

    /// - In `train` (named, or the default command), `--resume` alone becomes
    ///   `--resume-latest`; `--resume PATH` stays as it is.
    /// - A first word that is no subcommand and no option is a misspelt subcommand.
    static func normalized(_ arguments: [String]) throws -> [String] {
        if let first = arguments.first, !first.hasPrefix("-"), !subcommands.contains(first) {
            let hint = closestMatch(first, in: subcommands).map { "did you mean '\($0)'? " } ?? ""
            throw UserError("unknown command '\(first)'; \(hint)the commands are \(subcommands.dropLast().joined(separator: ", ")) (see nntrain --help)")
        }
        guard arguments.first.map({ $0 == "train" || $0.hasPrefix("-") }) ?? false else { return arguments }
        return arguments.indices.map { index in
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            let bare = arguments[index] == "--resume" && (next?.hasPrefix("-") ?? true)
            return bare ? "--resume-latest" : arguments[index]
        }
    }
}
