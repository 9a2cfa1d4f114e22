// Error paths of run-time loading: what a user without CUDA sees.

import XCTest
import Foundation
import NNCUDA
import NNCore

final class LibraryLoadingTests: XCTestCase {
    override func setUp() { libraryPathsFromTheEnvironment }

    func testMissingLibraryGivesOneLineNamingItAndTheSearchedPlaces() {
        XCTAssertThrowsError(try DynamicLibrary.open(["libnntrain-missing.so.7", "libnntrain-missing.so"],
                                                     firstDirectories: ["/nonexistent/nntrain-libs"],
                                                     advice: "install it or use --device cpu")) { error in
            guard let error = error as? UserError else { return XCTFail("not a UserError: \(error)") }
            let message = error.message
            XCTAssertTrue(message.hasPrefix("libnntrain-missing.so.7 or libnntrain-missing.so not found (searched "), message)
            for place in ["/nonexistent/nntrain-libs", "LD_LIBRARY_PATH", "ld.so.cache", "/usr/local/cuda/lib64",
                          "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"] {
                XCTAssertTrue(message.contains(place), "should name \(place): \(message)")
            }
            XCTAssertTrue(message.hasSuffix("; install it or use --device cpu"), message)
            XCTAssertFalse(message.contains("\n"))
        }
    }

    func testAFileThatIsNotALibrarySaysSoWithTheLoaderReason() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-fake-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("not an ELF file".utf8).write(to: directory.appendingPathComponent("libnntrain-fake.so.1"))
        XCTAssertThrowsError(try DynamicLibrary.open(["libnntrain-fake.so.1"], firstDirectories: [directory.path],
                                                     advice: "use --device cpu")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("libnntrain-fake.so.1 was found but could not be loaded ("), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }

    func testMissingSymbolIsAUserError() throws {
        let libc = try DynamicLibrary.open(["libc.so.6"], advice: "")
        typealias Getpid = @convention(c) () -> Int32
        let real: Getpid = try libc.function("getpid")
        XCTAssertEqual(real(), getpid(), "a resolved function is callable")
        XCTAssertThrowsError(try libc.function("cuNoSuchFunction_v9", as: Getpid.self)) { error in
            XCTAssertTrue("\(error)".contains("has no function cuNoSuchFunction_v9"), "\(error)")
        }
    }

    func testProbeReportsInsteadOfCrashing() {
        switch CUDAAccelerator.probe() {
        case .failure(let error):
            // This machine has no GPU (or no CUDA library): a one-line reason.
            XCTAssertTrue(error.message.contains("libcuda") || error.message.contains("CUDA"), error.message)
            XCTAssertTrue(error.message.hasSuffix("use --device cpu") || error.message.contains("--device cpu"), error.message)
            XCTAssertFalse(error.message.contains("\n"), error.message)
            XCTAssertThrowsError(try CUDAAccelerator(deviceOrdinal: 0)) { thrown in
                XCTAssertEqual(thrown as? UserError, error, "init fails for the same reason the probe gives")
            }
        case .success(let info):
            XCTAssertFalse(info.name.isEmpty)
            XCTAssertGreaterThanOrEqual(info.computeCapability, 30)
            XCTAssertGreaterThan(info.totalMemory, 0)
            XCTAssertThrowsError(try CUDAAccelerator(deviceOrdinal: info.deviceCount)) { error in
                XCTAssertTrue("\(error)".contains("device \(info.deviceCount): only \(info.deviceCount) CUDA device"), "\(error)")
            }
        }
    }
}
