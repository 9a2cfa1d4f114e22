// NVRTC compiles every kernel for the architectures nntrain targets. Needs
// libnvrtc (not a GPU): set NNTRAIN_NVRTC_DIR to pip's
// nvidia/cuda_nvrtc/lib directory, or install the CUDA toolkit.

import Foundation
import XCTest
import NNCUDA
import NNCore

final class KernelCompileTests: XCTestCase {
    override func setUp() { libraryPathsFromTheEnvironment }

    func compiler() throws -> KernelCompiler {
        do {
            return try KernelCompiler()
        } catch {
            throw XCTSkip("NVRTC not available: \(error)")
        }
    }

    /// Whether `needle` occurs in `haystack` (kernel names in a CUBIN's symbol table or in PTX).
    func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let bytes = Array(needle.utf8)
        guard bytes.count <= haystack.count else { return false }
        return (0...(haystack.count - bytes.count)).contains { start in
            haystack[start] == bytes[0] && Array(haystack[start..<(start + bytes.count)]) == bytes
        }
    }

    /// The kernel names in a CUDA source: `extern "C" __global__ void NAME(`.
    func definedKernels(_ source: String) -> Set<String> {
        let marker = "extern \"C\" __global__ void "
        return Set(source.components(separatedBy: "\n").compactMap { line -> String? in
            guard line.hasPrefix(marker) else { return nil }
            return String(line.dropFirst(marker.count).prefix { $0 != "(" })
        })
    }

    func testTheSourceDefinesExactlyTheKernelsTheAcceleratorLaunches() {
        XCTAssertEqual(definedKernels(CUDAKernels.source), Set(CUDAKernels.names))
        XCTAssertEqual(Array(CUDAKernels.headers.keys), ["nn_rules.h"], "the headers nntrain.cu includes")
    }

    func testTheEmbeddedFilesAreTheFilesInTheTree() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources")
        let kernel = try String(contentsOf: sources.appendingPathComponent("NNCUDA/kernels/nntrain.cu"), encoding: .utf8)
        let rules = try String(contentsOf: sources.appendingPathComponent("CKernels/include/nn_rules.h"), encoding: .utf8)
        XCTAssertEqual(CUDAKernels.source, kernel)
        XCTAssertEqual(CUDAKernels.headers["nn_rules.h"], rules)
    }

    func testEveryKernelCompilesForSM80AndSM90() throws {
        let nvrtc = try compiler()
        print("NVRTC \(nvrtc.version.major).\(nvrtc.version.minor) from \(nvrtc.libraryPath); architectures \(nvrtc.supportedArchitectures)")
        for capability in [80, 90] {
            let compiled: CompiledKernels
            do {
                compiled = try nvrtc.compile(capability: capability)
            } catch {
                XCTFail("sm_\(capability): \(error)")  // the error carries NVRTC's log
                continue
            }
            if !compiled.log.isEmpty { print("NVRTC log for sm_\(capability):\n\(compiled.log)") }
            XCTAssertEqual(compiled.architecture, "sm_\(capability)")
            XCTAssertTrue(compiled.isCubin, "NVRTC \(nvrtc.version) should emit CUBIN")
            XCTAssertGreaterThan(compiled.image.count, 1000)
            XCTAssertEqual(Array(compiled.image.prefix(4)), [0x7F, 0x45, 0x4C, 0x46], "a CUBIN is an ELF file")
            for name in CUDAKernels.names {
                XCTAssertTrue(contains(compiled.image, name), "sm_\(capability): kernel \(name) missing from the CUBIN")
            }
        }
    }

    func testUnknownNewArchitectureFallsBackToPTX() throws {
        let nvrtc = try compiler()
        let supported = nvrtc.supportedArchitectures
        guard let newest = supported.max() else { throw XCTSkip("NVRTC cannot list its architectures") }
        let compiled = try nvrtc.compile(capability: newest + 1)
        XCTAssertFalse(compiled.isCubin)
        XCTAssertEqual(compiled.architecture, "compute_\(newest)")
        XCTAssertEqual(compiled.image.last, 0, "PTX is handed to the driver NUL-terminated")
        for name in CUDAKernels.names {
            XCTAssertTrue(contains(compiled.image, ".entry \(name)("), "kernel \(name) missing from the PTX")
        }
    }

    func testTooOldArchitectureIsAUserError() throws {
        let nvrtc = try compiler()
        guard !nvrtc.supportedArchitectures.isEmpty else { throw XCTSkip("NVRTC cannot list its architectures") }
        XCTAssertThrowsError(try nvrtc.compile(capability: 10)) { error in
            XCTAssertTrue("\(error)".contains("compute capability 1.0 is older than NVRTC"), "\(error)")
        }
    }

    func testSyntaxErrorFailsWithTheLogInTheError() throws {
        let nvrtc = try compiler()
        let broken = #"extern "C" __global__ void nn_broken(float* x) { x[0] = 1.0f +; }"#
        XCTAssertThrowsError(try nvrtc.compile(broken, name: "broken.cu", capability: 80)) { error in
            let message = "\(error)"
            XCTAssertTrue(error is UserError && message.hasPrefix("NVRTC could not compile"), message)
            XCTAssertTrue(message.contains("broken.cu"), message)
            XCTAssertTrue(message.contains("error"), message)
            XCTAssertTrue(message.contains("expected an expression"), "NVRTC's own diagnostic should be in the error: \(message)")
            XCTAssertFalse(message.contains("\n"), "one line: \(message)")
        }
    }
}
