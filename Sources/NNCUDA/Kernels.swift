// The CUDA backend's kernels: CUDA C in kernels/nntrain.cu (with CKernels'
// nn_rules.h), compiled at start-up by NVRTC. The build embeds both files
// into the binary (the EmbedKernelSources plugin), so a static `nntrain`
// needs no files beside it.

import NNCore
import Foundation

/// The CUDA C source of every kernel and the names the accelerator resolves.
public enum CUDAKernels {
    /// Every `extern "C" __global__` kernel defined in `source`.
    public static var names: [String] { Kernel.allCases.map(\.rawValue) }

    /// Threads per block for every launch; reductions assume a multiple of 32.
    static let blockSize = 256

    /// The file name NVRTC reports in its messages.
    public static let sourceName = "nntrain.cu"

    /// The kernels' CUDA C source, kernels/nntrain.cu.
    public static let source: String = embeddedSources[sourceName]!

    /// The headers `source` includes, by the name it includes them under
    /// (NVRTC has no include path, so it gets these as named headers).
    public static let headers: [String: String] = embeddedSources.filter { $0.key != sourceName }
}

/// The kernels by name, as the accelerator launches them.
enum Kernel: String, CaseIterable {
    case addBias = "nn_add_bias", sumRows = "nn_sum_rows"
    case multiply = "nn_multiply", activate = "nn_activate", activationBackward = "nn_activation_backward"
    case softmaxRows = "nn_softmax_rows", softmaxBackward = "nn_softmax_backward"
    case softmaxCrossEntropy = "nn_softmax_xent", sigmoidBinaryCrossEntropy = "nn_sigmoid_bce"
    case squaredError = "nn_squared_error", argmaxMatches = "nn_argmax_matches"
    case dropout = "nn_dropout", addPenalty = "nn_add_penalty"
    case sgd = "nn_sgd", rmsprop = "nn_rmsprop", adam = "nn_adam"
    case checkFinite = "nn_check_finite"
}

// MARK: - Compiling with NVRTC

/// A compiled kernel image, ready for `cuModuleLoadData`.
public struct CompiledKernels: Sendable {
    /// The CUBIN (device code for one architecture) or NUL-terminated PTX.
    public let image: [UInt8]
    /// Whether `image` is CUBIN rather than PTX (which the driver compiles on load).
    public let isCubin: Bool
    /// The `--gpu-architecture` value used, e.g. `sm_90` or `compute_90`.
    public let architecture: String
    /// NVRTC's log (warnings; empty when clean).
    public let log: String
}

/// Compiles CUDA C with NVRTC, opened at run time (see `CUDALibraries.swift`).
public final class KernelCompiler {
    let nvrtc: NVRTCLibrary

    /// Opens NVRTC, looking first in `CUDALibraryPaths.nvrtc`.
    ///
    /// - Throws: `UserError` naming the library and the places searched.
    public init() throws { nvrtc = try NVRTCLibrary() }

    /// The path NVRTC was loaded from.
    public var libraryPath: String { nvrtc.library.path }

    /// NVRTC's version, e.g. (12, 9).
    public var version: (major: Int, minor: Int) {
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtc.nvrtcVersion(&major, &minor)
        return (Int(major), Int(minor))
    }

    /// Compute capabilities NVRTC can target (e.g. 75 for 7.5); empty when the
    /// library cannot say (older than 11.2).
    public var supportedArchitectures: [Int] {
        guard let count = nvrtc.nvrtcGetNumSupportedArchs, let list = nvrtc.nvrtcGetSupportedArchs else { return [] }
        var n: Int32 = 0
        guard count(&n) == 0, n > 0 else { return [] }
        var archs = [Int32](repeating: 0, count: Int(n))
        guard list(&archs) == 0 else { return [] }
        return archs.map(Int.init)
    }

    /// Compiles `source` for compute capability `capability` (major·10 + minor),
    /// with `headers` (name → text) available to its `#include "name"` lines.
    ///
    /// Asks for CUBIN (`--gpu-architecture=sm_XY`) when NVRTC supports that
    /// architecture and can emit CUBIN; otherwise PTX for the newest virtual
    /// architecture it knows that the device can run, which the driver
    /// compiles when loading.
    ///
    /// - Throws: `UserError` with NVRTC's log when compilation fails.
    public func compile(_ source: String = CUDAKernels.source, name: String = CUDAKernels.sourceName,
                        headers: [String: String] = CUDAKernels.headers, capability: Int) throws -> CompiledKernels {
        let supported = supportedArchitectures
        var target = capability, real = nvrtc.nvrtcGetCUBIN != nil
        if !supported.isEmpty && !supported.contains(capability) {
            guard let older = supported.filter({ $0 < capability }).max() else {
                throw UserError("compute capability \(capability / 10).\(capability % 10) is older than NVRTC \(version.major).\(version.minor) supports (oldest: \(supported.min() ?? 0)); use an older CUDA toolkit or --device cpu")
            }
            target = older
            real = false
        }
        let architecture = "\(real ? "sm" : "compute")_\(target)"
        let options = ["--gpu-architecture=\(architecture)", "--fmad=false", "-default-device"]

        var program: OpaquePointer?
        let headerList = headers.sorted { $0.key < $1.key }
        let headerTexts = headerList.map { strdup($0.value) }, headerNames = headerList.map { strdup($0.key) }
        defer { (headerTexts + headerNames).forEach { free($0) } }
        var result = headerTexts.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { texts in
            headerNames.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { names in
                nvrtc.nvrtcCreateProgram(&program, source, name, Int32(headerList.count), texts.baseAddress, names.baseAddress)
            }
        }
        guard result == 0 else {
            throw UserError("nvrtcCreateProgram failed: \(nvrtc.errorString(result))")
        }
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }

        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        result = cOptions.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer {
            nvrtc.nvrtcCompileProgram(program, Int32($0.count), $0.baseAddress)
        }
        let log = programLog(program)
        guard result == 0 else {
            let lines = log.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            throw UserError("NVRTC could not compile \(name) for \(architecture) (\(nvrtc.errorString(result))): \(lines.joined(separator: " | "))")
        }

        if real, let getSize = nvrtc.nvrtcGetCUBINSize, let get = nvrtc.nvrtcGetCUBIN {
            var size = 0
            if getSize(program, &size) == 0, size > 0 {
                var image = [UInt8](repeating: 0, count: size)
                let status = image.withUnsafeMutableBytes { get(program, $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
                if status == 0 { return CompiledKernels(image: image, isCubin: true, architecture: architecture, log: log) }
            }
        }
        var size = 0
        result = nvrtc.nvrtcGetPTXSize(program, &size)
        guard result == 0, size > 0 else {
            throw UserError("NVRTC produced no code for \(architecture): \(nvrtc.errorString(result))")
        }
        var image = [UInt8](repeating: 0, count: size)  // size counts the terminating NUL
        result = image.withUnsafeMutableBytes { nvrtc.nvrtcGetPTX(program, $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        guard result == 0 else {
            throw UserError("nvrtcGetPTX failed: \(nvrtc.errorString(result))")
        }
        return CompiledKernels(image: image, isCubin: false, architecture: architecture, log: log)
    }

    private func programLog(_ program: OpaquePointer?) -> String {
        var size = 0
        guard nvrtc.nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "" }
        var buffer = [CChar](repeating: 0, count: size)
        guard nvrtc.nvrtcGetProgramLog(program, &buffer) == 0 else { return "" }
        return String(cString: buffer)
    }
}
