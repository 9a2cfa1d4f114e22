import Foundation
import NNCUDA

/// The directories of NVRTC and cuBLAS that the test run names
/// (`scripts/test` sets `NNTRAIN_NVRTC_DIR` to pip's copy), handed to the
/// backend as the application hands them. Evaluated once, on first use.
let libraryPathsFromTheEnvironment: Void = {
    func directories(_ name: String) -> [String] {
        ProcessInfo.processInfo.environment[name]?.split(separator: ":").map(String.init) ?? []
    }
    CUDALibraryPaths.nvrtc = directories("NNTRAIN_NVRTC_DIR")
    CUDALibraryPaths.cublas = directories("NNTRAIN_CUBLAS_DIR")
}()
