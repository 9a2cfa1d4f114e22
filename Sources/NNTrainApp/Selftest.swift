// `nntrain selftest`: the backend conformance suite on this machine's
// accelerator, then one epoch of the default preset on it.

import Foundation
import NNConformance
import NNCore
import NNTraining

enum SelfCheck {
    /// Runs every op of the accelerator contract on `device` against the CPU
    /// backend (fresh random inputs, several shapes), prints the report, then
    /// trains the default preset for one epoch there. Returns the exit status:
    /// 0 when every check passed, 1 when one failed.
    static func run(device: DeviceChoice, allowTF32: Bool, seed: UInt64, trainEpoch: Bool) throws -> Int32 {
        let threads = Environment.blasThreads(localRanks: 1).count
        let (candidate, note) = try Devices.open(device, localRank: 0, cpuThreads: threads, allowTF32: allowTF32)
        let reference = CPUAccelerator(threads: threads)
        output("conformance: \(candidate.name)\(note.isEmpty ? "" : " (\(note))") against \(reference.name)\n")
        let results = Conformance.run(candidate, reference: reference, seed: seed)
        let failed = results.filter { !$0.passed }
        for result in failed { output("\(result)\n") }
        let worst = results.map(\.maxRelativeError).filter(\.isFinite).max() ?? 0
        output("conformance: \(results.count - failed.count)/\(results.count) checks passed (largest relative error \(String(format: "%.2e", worst)), tolerance |a − r| ≤ \(Conformance.absoluteTolerance) + \(Conformance.relativeTolerance)·|r|)\n")
        guard trainEpoch else { return failed.isEmpty ? 0 : 1 }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nntrain-selftest-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let epoch = try Train.parse(["--preset", Presets.names[0], "--epochs", "1", "--run-dir", directory,
                                     "--device", device.rawValue] + (allowTF32 ? ["--allow-tf32"] : []))
        let status = Launch.train(epoch)
        return failed.isEmpty && status == 0 ? 0 : (status == 0 ? 1 : status)
    }
}
