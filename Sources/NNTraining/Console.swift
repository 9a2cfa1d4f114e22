// What the coordinator prints: Keras-style epoch lines, a progress bar on a
// terminal, plain lines otherwise.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Metrics of a pass over data, from summed statistics.
public struct Metrics: Sendable, Equatable {
    public var loss: Double
    /// Classifiers only.
    public var accuracy: Double?
    /// Regression only: mean squared and absolute error per output value.
    public var mse: Double?
    public var mae: Double?
    public var samples: Int

    /// Metrics from a statistics buffer summed over `samples` samples.
    public init(statistics s: [Double], samples: Int, isClassifier: Bool, accuracyUnits: Int, outputs: Int) {
        let n = Double(max(samples, 1))
        self.samples = samples
        loss = s[0] / n
        if isClassifier {
            accuracy = s[1] / (n * Double(max(accuracyUnits, 1)))
        } else {
            mse = s[2] / (n * Double(max(outputs, 1)))
            mae = s[3] / (n * Double(max(outputs, 1)))
        }
    }

    /// `(name, value)` pairs in display order, each name prefixed.
    public func named(prefix: String = "") -> [(String, Double)] {
        var result = [(prefix + "loss", loss)]
        if let accuracy { result.append((prefix + "accuracy", accuracy)) }
        if let mse { result.append((prefix + "mse", mse)) }
        if let mae { result.append((prefix + "mae", mae)) }
        return result
    }
}

/// Rank 0's terminal output. Other ranks hold a silent console.
public final class Console {
    public let enabled: Bool
    public let isTerminal: Bool
    private var lastDraw = 0.0
    private var barVisible = false

    /// Under an MPI launcher, rank 0's output is a pseudo-terminal even when
    /// mpirun writes to a file, so the live bar is off unless
    /// `NNTRAIN_PROGRESS=bar` asks for it (`plain` turns it off anywhere).
    public init(enabled: Bool, underLauncher: Bool = false) {
        self.enabled = enabled
        let environment = ProcessInfo.processInfo.environment
        switch environment["NNTRAIN_PROGRESS"] {
        case "bar": isTerminal = true
        case "plain": isTerminal = false
        default: isTerminal = !underLauncher && isatty(STDOUT_FILENO) != 0 && environment["TERM"] != "dumb"
        }
    }

    /// Prints one line.
    public func line(_ text: String) {
        guard enabled else { return }
        clearBar()
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Prints a warning to standard error.
    public func warn(_ text: String) {
        guard enabled else { return }
        clearBar()
        FileHandle.standardError.write(Data(("nntrain: warning: " + text + "\n").utf8))
    }

    /// Whether the bar is due for a redraw (terminal only, at most ten times
    /// a second), so callers fetch metrics from a device only then.
    public func wantsProgress(step: Int, of total: Int) -> Bool {
        guard enabled, isTerminal else { return false }
        return Date().timeIntervalSinceReferenceDate - lastDraw >= 0.1 || step == total
    }

    /// Redraws the progress bar.
    public func progress(step: Int, of total: Int, elapsed: Double, metrics: [(String, Double)]) {
        guard enabled, isTerminal else { return }
        lastDraw = Date().timeIntervalSinceReferenceDate
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        let text = "\r" + Console.counter(step, total) + " " + Console.bar(step, total)
            + " - ETA: " + Console.duration(eta) + Console.format(metrics) + "\u{1B}[K"
        FileHandle.standardOutput.write(Data(text.utf8))
        barVisible = true
    }

    private func clearBar() {
        guard barVisible else { return }
        FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
        barVisible = false
    }

    // MARK: - Formatting

    /// `  12/422`, right-aligned to the total's width.
    public static func counter(_ step: Int, _ total: Int) -> String {
        let width = String(total).count
        return String(repeating: " ", count: max(0, width - String(step).count)) + "\(step)/\(total)"
    }

    /// `[=========>....................]`, 30 wide.
    public static func bar(_ step: Int, _ total: Int) -> String {
        let width = 30
        let filled = total > 0 ? min(width, width * step / total) : width
        if filled >= width { return "[" + String(repeating: "=", count: width) + "]" }
        return "[" + String(repeating: "=", count: filled) + ">" + String(repeating: ".", count: width - filled - 1) + "]"
    }

    /// ` - loss: 0.4521 - accuracy: 0.8412`.
    public static func format(_ metrics: [(String, Double)]) -> String {
        metrics.map { " - \($0.0): \(String(format: "%.4f", $0.1))" }.joined()
    }

    /// `3s`, `2m 05s`, `1h 02m`.
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm %02ds", s / 60, s % 60) }
        return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60)
    }
}
