// What the in-process tests share: fresh directories and a deadline for
// work that could hang (a rank left waiting in a collective).

import Foundation
import XCTest

extension XCTestCase {
    /// A fresh directory path (not created), removed after the test.
    func temporaryDirectory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-inprocess-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Runs `body` on a thread of its own and fails the test if it has not
    /// returned after `seconds`: a hung rank then costs 30 s, not the suite.
    func withDeadline<T>(_ seconds: Double, file: StaticString = #filePath, line: UInt = #line,
                         _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Thread {
            box.set(Result(catching: body))
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + seconds) == .success else {
            XCTFail("not finished after \(seconds) s: a rank is hung", file: file, line: line)
            throw TimedOut()
        }
        return try box.get()
    }
}

/// A deadline passed.
struct TimedOut: Error {}

/// A result handed from one thread to another.
private final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?

    func set(_ value: Result<T, any Error>) { lock.withLock { result = value } }

    func get() throws -> T { try lock.withLock { try result!.get() } }
}
