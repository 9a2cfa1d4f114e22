// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "nntrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nntrain", targets: ["nntrain"]),
        // The modules as libraries, for packages built against this one (the
        // fuzz targets in Tests/Fuzz).
        .library(name: "NNCore", targets: ["NNCore"]),
        .library(name: "NNData", targets: ["NNData"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "NNTraining", targets: ["NNTraining"]),
        .library(name: "NNTrainApp", targets: ["NNTrainApp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // MARK: System libraries (C only)
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // The CPU backend's optimizer and activation loops, in C so that their square
        // roots vectorize; include/nn_rules.h holds the per-element arithmetic the
        // CUDA kernels share.
        .target(name: "CKernels", path: "Sources/CKernels",
                cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off"])]),

        // MARK: Library modules, one job each
        .target(name: "NNCore", dependencies: ["CBLAS", "CKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        // The CUDA kernels are kernels/*.cu, built into the binary by EmbedKernelSources.
        .target(name: "NNCUDA", dependencies: ["NNCore"], plugins: ["EmbedKernelSources"]),
        .target(name: "NNConformance", dependencies: ["NNCore"]),
        .target(name: "NNData", dependencies: ["NNCore", "CZlib"]),
        .target(name: "NNDistributed", dependencies: ["NNCore", "CMPI", "CKernels"]),
        // The file format alone: reader, writer, header parser, CRC-32C, atomic writes.
        .target(name: "SafeTensors"),
        .target(name: "NNTraining", dependencies: [
            "NNCore", "NNData", "NNDistributed", "SafeTensors",
            .product(name: "Yams", package: "Yams"),
        ]),

        // MARK: The application: command line, launch wiring, console, selftest, bench
        .target(name: "NNTrainApp", dependencies: [
            "NNTraining", "NNCore", "NNData", "NNDistributed", "NNCUDA", "NNConformance", "SafeTensors", "CZlib",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "nntrain", dependencies: ["NNTrainApp"]),

        // MARK: Build tools

        // Turns text files into a Swift source of string literals (see the plugin).
        .executableTarget(name: "EmbedSources"),
        .plugin(name: "EmbedKernelSources", capability: .buildTool(), dependencies: ["EmbedSources"]),

        // MARK: Tests
        .testTarget(name: "NNCoreTests", dependencies: ["NNCore"]),
        .testTarget(name: "NNDataTests", dependencies: ["NNData"]),
        .testTarget(name: "NNDistributedTests", dependencies: ["NNDistributed", "NNCore", "CKernels"]),
        .testTarget(name: "NNConformanceTests", dependencies: ["NNConformance", "NNCore"]),
        .testTarget(name: "NNCUDATests", dependencies: ["NNCUDA", "NNConformance", "NNCore"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "NNTrainingTests", dependencies: ["NNTraining", "NNDistributed", "NNCore", "NNData"]),
        .testTarget(name: "NNTrainAppTests", dependencies: ["NNTrainApp", "NNTraining", "NNDistributed", "NNCore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["NNTraining", "NNCUDA", "NNCore", "NNData", "NNDistributed", "SafeTensors"]),
    ]
)
