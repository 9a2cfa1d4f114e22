// Choosing the accelerator a rank computes on.

import NNCore
import NNCUDA

/// Which accelerator to use (`--device`).
enum DeviceChoice: String, CaseIterable, Sendable {
    /// A GPU when one is usable, else the CPU, silently.
    case auto
    /// OpenBLAS on the CPU.
    case cpu
    /// An NVIDIA GPU; an error when none is usable.
    case cuda
}

/// Opens accelerators.
enum Devices {
    /// The accelerator for a rank: GPU `localRank mod device count` for CUDA,
    /// else the CPU with `cpuThreads` OpenBLAS threads. The note says why.
    /// CUDA's errors are prefixed with the flag (`--device cuda: …`).
    static func open(_ choice: DeviceChoice, localRank: Int, cpuThreads: Int,
                     allowTF32: Bool = false) throws -> (accelerator: any Accelerator, note: String) {
        try Launch.flagged("--device \(choice.rawValue)") {
            try openUnflagged(choice, localRank: localRank, cpuThreads: cpuThreads, allowTF32: allowTF32)
        }
    }

    private static func openUnflagged(_ choice: DeviceChoice, localRank: Int, cpuThreads: Int,
                                      allowTF32: Bool) throws -> (accelerator: any Accelerator, note: String) {
        switch choice {
        case .cpu:
            return (CPUAccelerator(threads: cpuThreads), "")
        case .cuda, .auto:
            switch CUDAAccelerator.probe() {
            case .success(let info):
                let ordinal = localRank % max(info.deviceCount, 1)
                do {
                    let gpu = try CUDAAccelerator(deviceOrdinal: ordinal, allowTF32: allowTF32)
                    return (gpu, "GPU \(ordinal) of \(info.deviceCount) (local rank \(localRank))")
                } catch let error as UserError where choice == .auto {
                    return (CPUAccelerator(threads: cpuThreads), "auto: GPU unusable (\(error.message))")
                }
            case .failure(let error):
                guard choice == .auto else { throw error }
                return (CPUAccelerator(threads: cpuThreads), "auto: no GPU")
            }
        }
    }
}
