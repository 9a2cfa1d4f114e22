// safetensors files through SafeTensors.decode, as `read(path:)` runs it on
// the file's bytes; what decodes must encode and decode again.

import FuzzDriver
import SafeTensors

let path = "fuzz/model.safetensors"

Fuzz.main(seeds: { directory in
    let files: [(String, SafeTensorsFile)] = [
        ("two-tensors", SafeTensorsFile(tensors: [
            NamedTensor(name: "layers.0.weight", shape: [2, 3], values: [0.5, -1, 2, 0, 1e-3, 3]),
            NamedTensor(name: "layers.0.bias", shape: [2], values: [0.25, -0.25]),
        ], metadata: ["format": "nntrain-model", "note": "\u{e9}\u{1F600}"])),
        ("scalar-and-empty", SafeTensorsFile(tensors: [
            NamedTensor(name: "s", shape: [], values: [7]),
            NamedTensor(name: "e", shape: [0, 4], values: []),
        ])),
        ("empty", SafeTensorsFile(tensors: [])),
    ]
    for (name, file) in files { try Fuzz.writeSeed(file.encoded(), name, in: directory) }
    // A header without metadata and with escapes, as other writers make them.
    let header = Array(#"{"a\u0041\n":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8)
    var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
    bytes += withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian, Array.init)
    try Fuzz.writeSeed(bytes, "foreign-header", in: directory)
}) { bytes in
    Fuzz.expectAcceptedOrRefused(paths: [path]) {
        let file = try SafeTensors.decode(bytes, path: path)
        do {
            let again = try SafeTensors.decode(file.encoded(), path: path)
            if again.tensors.map(\.name) != file.tensors.map(\.name) || again.tensors.map(\.shape) != file.tensors.map(\.shape) {
                Fuzz.finding("re-encoding changed the tensors' names or shapes")
            }
        } catch {
            Fuzz.finding("a decoded file that does not decode again once encoded: \(error)")
        }
    }
}
