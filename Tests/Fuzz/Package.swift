// swift-tools-version:5.9
// libFuzzer targets for every parser a user's file reaches, one executable
// each, built against the main package by path. Build and run them with
// scripts/fuzz (it passes -sanitize=fuzzer,address); the normal build of the
// main package does not see this package.
import PackageDescription

// Only the fuzz targets link libFuzzer (scripts/fuzz instruments every module
// for coverage and ASan; the package's build tools must not get libFuzzer's
// main), and with lld: gold fails on libFuzzer's objects.
let linker: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzDriver"] + dependencies, path: "Sources/\(name)",
                      linkerSettings: linker)
}

let package = Package(
    name: "nntrain-fuzz",
    dependencies: [.package(name: "nntrain", path: "../..")],
    targets: [
        // Runs libFuzzer over a Swift closure and holds the checks every target shares.
        .target(name: "FuzzDriver", dependencies: [
            .product(name: "NNCore", package: "nntrain"),
            .product(name: "SafeTensors", package: "nntrain"),
        ]),
        fuzzTarget("fuzz-idx", [.product(name: "NNData", package: "nntrain")]),
        fuzzTarget("fuzz-csv", [.product(name: "NNData", package: "nntrain")]),
        fuzzTarget("fuzz-safetensors", [.product(name: "SafeTensors", package: "nntrain")]),
        fuzzTarget("fuzz-config", [.product(name: "NNTraining", package: "nntrain")]),
        fuzzTarget("fuzz-model", [
            .product(name: "NNTraining", package: "nntrain"), .product(name: "NNTrainApp", package: "nntrain"),
            .product(name: "NNData", package: "nntrain"),
        ]),
        fuzzTarget("fuzz-run-records", [
            .product(name: "NNTraining", package: "nntrain"), .product(name: "NNTrainApp", package: "nntrain"),
        ]),
    ]
)
