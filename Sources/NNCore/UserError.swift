/// A problem the user caused and can fix: bad input, a missing file, a config
/// that does not fit the data. The command line prints `message` as one line
/// and exits with status 2; it never carries a stack trace.
///
/// Messages name the place (file, line, field) first, then what is wrong,
/// then what to do: `train.csv:14: column 'petal_width': 'n/a' is not a number; fix or remove the row`.
public struct UserError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String

    /// An error with its one-line message.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
