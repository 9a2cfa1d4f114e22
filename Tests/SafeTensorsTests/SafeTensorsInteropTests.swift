import Foundation
import SafeTensors
import XCTest

/// Interoperability with the reference implementation (Hugging Face `safetensors`
/// for Python). Runs when `NNTRAIN_PYTHON` names an interpreter that can
/// `import safetensors.numpy, numpy`; skipped otherwise.
final class SafeTensorsInteropTests: XCTestCase {
    /// The interpreter named by `NNTRAIN_PYTHON`, or a skip.
    private func interpreter() throws -> String {
        guard let interpreter = ProcessInfo.processInfo.environment["NNTRAIN_PYTHON"], !interpreter.isEmpty else {
            throw XCTSkip("set NNTRAIN_PYTHON to a Python with `safetensors` and `numpy` installed to run the interop tests")
        }
        return interpreter
    }

    /// Runs `script` with the interpreter and `arguments`, returning stdout.
    private func python(_ script: String, _ arguments: [String] = []) throws -> String {
        let interpreter = try interpreter()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = ["-c", script] + arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch {
            throw XCTSkip("NNTRAIN_PYTHON=\(interpreter) cannot be started: \(error)")
        }
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errText = String(decoding: err, as: UTF8.self)
        if process.terminationStatus != 0, errText.contains("ModuleNotFoundError") {
            throw XCTSkip("NNTRAIN_PYTHON=\(interpreter) lacks safetensors or numpy: \(errText.split(separator: "\n").last ?? "")")
        }
        XCTAssertEqual(process.terminationStatus, 0, "python failed: \(errText)")
        return String(decoding: out, as: UTF8.self)
    }

    private func sample() -> SafeTensorsFile {
        SafeTensorsFile(tensors: [
            NamedTensor(name: "layers.0.weight", shape: [2, 3], values: [1, -2, 3.5, .pi, 1e-30, -7.25]),
            NamedTensor(name: "layers.0.bias", shape: [3], values: [0.1, 0.2, 0.3]),
            NamedTensor(name: "empty", shape: [0], values: []),
            NamedTensor(name: "we\"ird\\name é\n", shape: [1, 1], values: [42]),
        ], metadata: ["format": "nntrain", "config": "{\"a\": [1, 2]}\n\tend"])
    }

    func testPythonReadsWhatSwiftWrites() throws {
        _ = try python("import safetensors.numpy, numpy")
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/swift.safetensors"
        let original = sample()
        try original.write(to: path)
        let script = """
        import json, sys
        import safetensors.numpy
        from safetensors import safe_open
        tensors = safetensors.numpy.load_file(sys.argv[1])
        with safe_open(sys.argv[1], framework="np") as f:
            metadata = f.metadata()
        out = {name: {"dtype": str(t.dtype), "shape": list(t.shape), "values": [float(v) for v in t.reshape(-1)]} for name, t in tensors.items()}
        print(json.dumps({"tensors": out, "metadata": metadata}))
        """
        let output = try python(script, [path])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let tensors = try XCTUnwrap(json["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(tensors.count, original.tensors.count)
        for tensor in original.tensors {
            let seen = try XCTUnwrap(tensors[tensor.name], tensor.name)
            XCTAssertEqual(seen["dtype"] as? String, "float32")
            XCTAssertEqual(seen["shape"] as? [Int], tensor.shape, tensor.name)
            XCTAssertEqual((seen["values"] as? [Double])?.map(Float.init), tensor.values, tensor.name)
        }
        var expectedMetadata = original.metadata
        expectedMetadata[SafeTensorsFile.checksumKey] = try XCTUnwrap((json["metadata"] as? [String: String])?[SafeTensorsFile.checksumKey])
        XCTAssertEqual(json["metadata"] as? [String: String], expectedMetadata)
    }

    func testSwiftReadsWhatPythonWrites() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/python.safetensors"
        let script = """
        import sys
        import numpy as np
        import safetensors.numpy
        tensors = {
            "b": np.array([0.5, -1.5, 3.0], dtype=np.float32),
            "a": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
            "empty": np.zeros((0, 2), dtype=np.float32),
            "odd": np.array([1.0], dtype=np.float32),
        }
        safetensors.numpy.save_file(tensors, sys.argv[1], metadata={"k": "v", "quote": "say \\"hi\\"\\n"})
        """
        _ = try python(script, [path])
        let file = try SafeTensors.read(path: path)
        XCTAssertEqual(file.metadata, ["k": "v", "quote": "say \"hi\"\n"])
        XCTAssertEqual(file.tensors.map(\.name), ["a", "b", "empty", "odd"])
        XCTAssertEqual(file["a"]?.shape, [3, 4])
        XCTAssertEqual(file["a"]?.values, (0..<12).map { Float($0) / 7 })
        XCTAssertEqual(file["b"]?.values, [0.5, -1.5, 3])
        XCTAssertEqual(file["empty"]?.shape, [0, 2])
        XCTAssertEqual(file["odd"]?.values, [1])
    }
}
