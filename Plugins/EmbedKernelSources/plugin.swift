// Embeds a target's CUDA sources (.cu files) and the headers they include
// into the target as a generated Swift file, so NVRTC can compile them at
// run time from a binary that carries nothing beside itself. The headers
// are looked up in the public header directories of the target's C
// dependencies (nn_rules.h is CKernels').

import PackagePlugin
import Foundation

@main
struct EmbedKernelSources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        guard let module = target as? SourceModuleTarget else { return [] }
        let kernels = module.sourceFiles.map(\.path).filter { $0.extension == "cu" }
        guard !kernels.isEmpty else { return [] }
        let headerDirectories = module.recursiveTargetDependencies.compactMap {
            ($0 as? ClangSourceModuleTarget)?.publicHeadersDirectory
        }
        // Every header there is an input, so editing an included one re-embeds.
        let headers = headerDirectories.flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory.string)) ?? []).map { directory.appending($0) }
        }
        let output = context.pluginWorkDirectory.appending("EmbeddedSources.swift")
        var arguments = [output.string]
        for directory in headerDirectories { arguments += ["--search", directory.string] }
        arguments += kernels.map(\.string)
        return [.buildCommand(displayName: "Embedding \(kernels.map(\.lastComponent).joined(separator: ", ")) in \(target.name)",
                              executable: try context.tool(named: "EmbedSources").path,
                              arguments: arguments, inputFiles: kernels + headers, outputFiles: [output])]
    }
}
