import Foundation
import NNCUDA

/// The directories of NVRTC and cuBLAS that the test run names
/// (`scripts/test` sets `NNTRAIN_NVRTC_DIR` to pip's copy), handed to the
/// backend as the application hands them. Evaluated once, on first use.
let libraryPathsFromTheEnvironment: Void = {
    let environment = ProcessInfo.processInfo.environment
    CUDALibraryPaths.nvrtc = CUDALibraryPaths.directories(environment["NNTRAIN_NVRTC_DIR"])
    CUDALibraryPaths.cublas = CUDALibraryPaths.directories(environment["NNTRAIN_CUBLAS_DIR"])
}()
