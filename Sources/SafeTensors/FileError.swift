// The one error this module throws.

/// A file that cannot be read or written as asked: missing, damaged, hostile,
/// or refused by the system. `message` is one line that starts with the path
/// and ends with the reason, e.g. `run/model.safetensors: truncated: …`.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The whole line, path first.
    public let message: String

    /// An error with its one-line message.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
