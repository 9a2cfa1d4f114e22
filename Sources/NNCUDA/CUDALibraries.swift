// Run-time loading of the CUDA driver, cuBLAS and NVRTC.
//
// Nothing here links against CUDA at build time: each library is opened with
// `dlopen` and every entry point is resolved with `dlsym` into a Swift
// `@convention(c)` function type declared below from NVIDIA's headers
// (cuda.h, cublas_api.h, nvrtc.h). Where cuda.h defines a plain name as a
// macro for a versioned symbol (`cuMemAlloc` → `cuMemAlloc_v2`), the versioned
// symbol is the one resolved, since that is what a C program really calls.
//
// Handle types: CUdeviceptr is a 64-bit integer; contexts, streams, modules,
// functions, cuBLAS handles and NVRTC programs are opaque pointers.

import NNCore
#if canImport(Glibc)
import Glibc
#endif
import Foundation

// MARK: - Finding and opening a shared library

/// A shared library opened with `dlopen`, kept open for the life of the process.
public struct DynamicLibrary: @unchecked Sendable {
    /// The `dlopen` handle.
    let handle: UnsafeMutableRawPointer
    /// The name or path that opened it.
    public let path: String

    /// Directories searched after what `dlopen` itself searches (LD_LIBRARY_PATH, ld.so.cache).
    public static let usualDirectories = [
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/lib/x86_64-linux-gnu",
    ]

    /// Opens the first of `names` that loads, trying each in `firstDirectories`,
    /// then by bare name (so `dlopen` searches LD_LIBRARY_PATH and ld.so.cache),
    /// then in `usualDirectories`. Files in the same directory whose names start
    /// with one of `companions` are opened globally first, so that the library's
    /// own dependencies (cuBLAS needs cuBLASLt; NVRTC opens its builtins by name)
    /// resolve even when that directory is not on the loader's path.
    ///
    /// - Throws: `UserError` naming what was looked for, where, and `advice`.
    public static func open(_ names: [String], firstDirectories: [String] = [], companions: [String] = [],
                            advice: String) throws -> DynamicLibrary {
        var candidates: [(path: String, directory: String?)] = []
        for directory in firstDirectories { for name in names { candidates.append(("\(directory)/\(name)", directory)) } }
        for name in names { candidates.append((name, nil)) }
        for directory in usualDirectories { for name in names { candidates.append(("\(directory)/\(name)", directory)) } }

        var loadFailures: [String] = []
        for candidate in candidates {
            if let directory = candidate.directory {
                guard FileManager.default.fileExists(atPath: candidate.path) else { continue }
                let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                for file in files.sorted() where companions.contains(where: { file.hasPrefix($0) }) {
                    _ = dlopen("\(directory)/\(file)", RTLD_NOW | RTLD_GLOBAL)
                }
            }
            if let handle = dlopen(candidate.path, RTLD_NOW | RTLD_LOCAL) {
                return DynamicLibrary(handle: handle, path: candidate.path)
            }
            // A bare name that is simply absent is the normal miss; anything
            // else (a file that exists but cannot load) is worth reporting.
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            if candidate.directory != nil || !reason.contains("No such file") {
                loadFailures.append(reason)
            }
        }
        let wanted = names.count == 1 ? names[0]
            : names.dropLast().joined(separator: ", ") + " or " + names.last!
        let places = (firstDirectories + ["LD_LIBRARY_PATH", "ld.so.cache"] + usualDirectories).joined(separator: ", ")
        if let failure = loadFailures.first {
            throw UserError("\(wanted) was found but could not be loaded (\(failure)); \(advice)")
        }
        throw UserError("\(wanted) not found (searched \(places)); \(advice)")
    }

    /// Resolves `symbol` as a C function of type `T`.
    ///
    /// - Throws: `UserError` when the library lacks the symbol (too old a version).
    public func function<T>(_ symbol: String, as type: T.Type = T.self) throws -> T {
        guard let address = dlsym(handle, symbol) else {
            throw UserError("\(path) has no function \(symbol) (too old a version?); update CUDA or use --device cpu")
        }
        return unsafeBitCast(address, to: type)
    }

    /// Resolves `symbol` when present (for entry points newer libraries add).
    public func optionalFunction<T>(_ symbol: String, as type: T.Type = T.self) -> T? {
        dlsym(handle, symbol).map { unsafeBitCast($0, to: type) }
    }
}

/// Directories searched for cuBLAS and NVRTC before the loader's own places
/// (pip's wheels, say, install them outside them). Process-wide: the
/// application sets them from its settings before opening an accelerator.
public enum CUDALibraryPaths {
    /// Searched first for libcublas.
    public static var cublas: [String] {
        get { lock.withLock { directories.cublas } }
        set { lock.withLock { directories.cublas = newValue } }
    }

    /// Searched first for libnvrtc.
    public static var nvrtc: [String] {
        get { lock.withLock { directories.nvrtc } }
        set { lock.withLock { directories.nvrtc = newValue } }
    }

    /// The directories of a colon-separated list (`/a/lib:/b/lib`); none for nil.
    public static func directories(_ list: String?) -> [String] {
        list?.split(separator: ":").map(String.init) ?? []
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var directories: (cublas: [String], nvrtc: [String]) = ([], [])
}

// MARK: - Driver API (libcuda.so.1)

/// The CUDA driver API entry points this backend uses.
final class CUDADriver: @unchecked Sendable {
    typealias Result = Int32
    typealias Handle = OpaquePointer?

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> Result
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Result
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<Handle>, Int32) -> Result
    let cuDevicePrimaryCtxRelease: @convention(c) (Int32) -> Result
    let cuCtxSetCurrent: @convention(c) (Handle) -> Result
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Result
    let cuStreamDestroy: @convention(c) (Handle) -> Result
    let cuStreamSynchronize: @convention(c) (Handle) -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Result
    let cuMemFree: @convention(c) (UInt64) -> Result
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Result
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Result
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Result
    let cuEventRecord: @convention(c) (Handle, Handle) -> Result
    let cuEventSynchronize: @convention(c) (Handle) -> Result
    let cuEventDestroy: @convention(c) (Handle) -> Result
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer, Int, Handle) -> Result
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer, UInt64, Int, Handle) -> Result
    let cuMemsetD32Async: @convention(c) (UInt64, UInt32, Int, Handle) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<Handle>, UnsafeRawPointer) -> Result
    let cuModuleUnload: @convention(c) (Handle) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UnsafePointer<CChar>) -> Result
    let cuLaunchKernel: @convention(c) (Handle, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, Handle,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result
    let cuGetErrorName: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result

    /// `CU_EVENT_DISABLE_TIMING` from cuda.h: an event only for ordering, cheapest to record.
    static let eventDisableTiming: UInt32 = 2
    /// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` / `_MINOR` from cuda.h.
    static let computeCapabilityMajor: Int32 = 75, computeCapabilityMinor: Int32 = 76

    /// Opens libcuda.so.1 and resolves every entry point.
    init() throws {
        let lib = try DynamicLibrary.open(["libcuda.so.1"], advice: "install the NVIDIA driver or use --device cpu")
        library = lib
        cuInit = try lib.function("cuInit")
        cuDriverGetVersion = try lib.function("cuDriverGetVersion")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try lib.function("cuDevicePrimaryCtxRelease_v2")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamDestroy = try lib.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemAllocHost = try lib.function("cuMemAllocHost_v2")
        cuMemFreeHost = try lib.function("cuMemFreeHost")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        cuEventDestroy = try lib.function("cuEventDestroy_v2")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemsetD32Async = try lib.function("cuMemsetD32Async")
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleUnload = try lib.function("cuModuleUnload")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuGetErrorName = try lib.function("cuGetErrorName")
    }

    /// The driver's name for a result code, e.g. `CUDA_ERROR_OUT_OF_MEMORY`.
    func errorName(_ result: Result) -> String {
        var name: UnsafePointer<CChar>?
        if cuGetErrorName(result, &name) == 0, let name { return String(cString: name) }
        return "CUresult \(result)"
    }

    /// Throws a one-line `UserError` unless `result` is CUDA_SUCCESS.
    func check(_ result: Result, _ call: String) throws {
        if result != 0 { throw UserError("\(call) failed with \(errorName(result)); use --device cpu if this persists") }
    }
}

// MARK: - cuBLAS (libcublas.so.12)

/// The cuBLAS entry points this backend uses.
final class CUBLAS: @unchecked Sendable {
    typealias Status = Int32
    typealias Handle = OpaquePointer?

    /// `cublasOperation_t`.
    static let noTranspose: Int32 = 0, transpose: Int32 = 1
    /// `cublasMath_t`: CUBLAS_DEFAULT_MATH and CUBLAS_TF32_TENSOR_OP_MATH.
    static let defaultMath: Int32 = 0, tf32TensorOpMath: Int32 = 3

    let library: DynamicLibrary
    let cublasCreate: @convention(c) (UnsafeMutablePointer<Handle>) -> Status
    let cublasDestroy: @convention(c) (Handle) -> Status
    let cublasGetVersion: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Status
    let cublasSetStream: @convention(c) (Handle, OpaquePointer?) -> Status
    let cublasSetMathMode: @convention(c) (Handle, Int32) -> Status
    /// cublasSgemm_v2(handle, transa, transb, m, n, k, α*, A, lda, B, ldb, β*, C, ldc), column-major.
    let cublasSgemm: @convention(c) (Handle, Int32, Int32, Int32, Int32, Int32,
                                     UnsafePointer<Float>, UnsafeRawPointer?, Int32, UnsafeRawPointer?, Int32,
                                     UnsafePointer<Float>, UnsafeMutableRawPointer?, Int32) -> Status

    /// Opens libcublas (12, then 13, then unversioned) and resolves every entry point.
    init() throws {
        let lib = try DynamicLibrary.open(
            ["libcublas.so.12", "libcublas.so.13", "libcublas.so"],
            firstDirectories: CUDALibraryPaths.cublas,
            companions: ["libcublasLt.so"],
            advice: "install cuBLAS (the CUDA toolkit, or pip's nvidia-cublas-cu12 with NNTRAIN_CUBLAS_DIR set to its lib directory) or use --device cpu")
        library = lib
        cublasCreate = try lib.function("cublasCreate_v2")
        cublasDestroy = try lib.function("cublasDestroy_v2")
        cublasGetVersion = try lib.function("cublasGetVersion_v2")
        cublasSetStream = try lib.function("cublasSetStream_v2")
        cublasSetMathMode = try lib.function("cublasSetMathMode")
        cublasSgemm = try lib.function("cublasSgemm_v2")
    }
}

// MARK: - NVRTC (libnvrtc.so.12)

/// The NVRTC entry points the kernel compiler uses.
final class NVRTCLibrary: @unchecked Sendable {
    typealias Result = Int32
    typealias Program = OpaquePointer?

    let library: DynamicLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Result
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<Program>, UnsafePointer<CChar>, UnsafePointer<CChar>,
                                            Int32, UnsafePointer<UnsafePointer<CChar>?>?,
                                            UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program>) -> Result
    let nvrtcCompileProgram: @convention(c) (Program, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcGetProgramLogSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetProgramLog: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcGetPTXSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetPTX: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Result
    /// CUBIN output (NVRTC 11.1 and later); absent in older libraries.
    let nvrtcGetCUBINSize: (@convention(c) (Program, UnsafeMutablePointer<Int>) -> Result)?
    let nvrtcGetCUBIN: (@convention(c) (Program, UnsafeMutablePointer<CChar>) -> Result)?
    let nvrtcGetNumSupportedArchs: (@convention(c) (UnsafeMutablePointer<Int32>) -> Result)?
    let nvrtcGetSupportedArchs: (@convention(c) (UnsafeMutablePointer<Int32>) -> Result)?

    /// Opens libnvrtc, looking first in `CUDALibraryPaths.nvrtc`.
    init() throws {
        let lib = try DynamicLibrary.open(
            ["libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so"],
            firstDirectories: CUDALibraryPaths.nvrtc,
            companions: ["libnvrtc-builtins.so"],
            advice: "install NVRTC (the CUDA toolkit, or pip's nvidia-cuda-nvrtc-cu12 with NNTRAIN_NVRTC_DIR set to its lib directory) or use --device cpu")
        library = lib
        nvrtcVersion = try lib.function("nvrtcVersion")
        nvrtcGetErrorString = try lib.function("nvrtcGetErrorString")
        nvrtcCreateProgram = try lib.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try lib.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog")
        nvrtcGetPTXSize = try lib.function("nvrtcGetPTXSize")
        nvrtcGetPTX = try lib.function("nvrtcGetPTX")
        nvrtcGetCUBINSize = lib.optionalFunction("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = lib.optionalFunction("nvrtcGetCUBIN")
        nvrtcGetNumSupportedArchs = lib.optionalFunction("nvrtcGetNumSupportedArchs")
        nvrtcGetSupportedArchs = lib.optionalFunction("nvrtcGetSupportedArchs")
    }

    /// NVRTC's text for a result code.
    func errorString(_ result: Result) -> String {
        nvrtcGetErrorString(result).map { String(cString: $0) } ?? "nvrtcResult \(result)"
    }
}
