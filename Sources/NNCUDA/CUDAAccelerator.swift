// The CUDA backend: cuBLAS for matrix products, NVRTC-compiled kernels
// (kernels/nntrain.cu, see Kernels.swift) for everything else, all queued on
// one stream.
//
// B = batch rows, O = outputs per row, K = classes, n = element count.
// A tensor's device address is storage.address + 4·offset (CUdeviceptr).
// Ops return as soon as their work is queued; only a copy into host memory
// waits for the stream. Host buffers are page-locked, so copies from them
// are asynchronous too, and an event per buffer tells when it is free again.

import NNCore
import Foundation

// MARK: - Device description

/// The GPU a CUDA accelerator runs on, as the driver describes it.
public struct DeviceInfo: Sendable, Equatable, CustomStringConvertible {
    /// Index among the driver's devices (`--device cuda:N`).
    public let ordinal: Int
    /// Number of CUDA devices the driver sees.
    public let deviceCount: Int
    /// Marketing name, e.g. `NVIDIA H200`.
    public let name: String
    /// Compute capability as major·10 + minor, e.g. 90 for 9.0.
    public let computeCapability: Int
    /// Device memory in bytes.
    public let totalMemory: Int
    /// The driver's CUDA version as major·1000 + minor·10, e.g. 12040.
    public let driverVersion: Int

    /// e.g. `NVIDIA H200 (sm_90, 139.8 GiB, driver CUDA 12.4)`.
    public var description: String {
        let gib = Double(totalMemory) / 1_073_741_824
        return "\(name) (sm_\(computeCapability), \(String(format: "%.1f", gib)) GiB, driver CUDA \(driverVersion / 1000).\(driverVersion % 1000 / 10))"
    }
}

// MARK: - Context shared with storages

/// The primary context and the stream, kept alive by the accelerator and by
/// every storage it allocated, so memory outliving the accelerator can still
/// be freed.
final class CUDAContext: @unchecked Sendable {
    let driver: CUDADriver
    let device: Int32
    let context: OpaquePointer?
    let stream: OpaquePointer?

    /// Retains device `device`'s primary context (the one the CUDA runtime,
    /// and so cuBLAS, uses) and creates a stream on it.
    init(driver: CUDADriver, device: Int32) throws {
        self.driver = driver
        self.device = device
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.context = context
        var stream: OpaquePointer?
        do {
            try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
            try driver.check(driver.cuStreamCreate(&stream, 0), "cuStreamCreate")
        } catch {
            _ = driver.cuDevicePrimaryCtxRelease(device)
            throw error
        }
        self.stream = stream
    }

    /// Makes the context current on the calling thread (cheap; the
    /// accelerator may be used from any one thread at a time).
    func makeCurrent() { _ = driver.cuCtxSetCurrent(context) }

    /// Waits for all queued work.
    func synchronize() {
        makeCurrent()
        expectSuccess(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// Frees device memory once queued work that may use it is done.
    func free(_ address: UInt) {
        synchronize()
        expectSuccess(driver.cuMemFree(UInt64(address)), "cuMemFree")
    }

    /// Frees page-locked host memory once queued copies that may use it are done.
    func freeHost(_ pointer: UnsafeMutableRawPointer) {
        synchronize()
        expectSuccess(driver.cuMemFreeHost(pointer), "cuMemFreeHost")
    }

    /// Stops on a failure that no user input can cause (a lost device, a
    /// kernel fault): the process cannot continue meaningfully.
    func expectSuccess(_ result: Int32, _ call: String) {
        if result != 0 { fatalError("CUDA: \(call) failed with \(driver.errorName(result))") }
    }

    deinit {
        makeCurrent()
        _ = driver.cuStreamSynchronize(stream)
        _ = driver.cuStreamDestroy(stream)
        _ = driver.cuDevicePrimaryCtxRelease(device)
    }
}

// MARK: - Accelerator

/// The CUDA accelerator: driver API, cuBLAS and NVRTC opened at run time, so
/// the binary builds and runs without CUDA installed.
public final class CUDAAccelerator: Accelerator {
    /// The device this accelerator runs on.
    public let device: DeviceInfo
    /// Whether cuBLAS may use TF32 tensor cores for matrix products (faster,
    /// ~10-bit mantissa inputs; fails the 1e-4 conformance checks of gemm).
    public let allowTF32: Bool
    /// Whether the kernels were loaded from CUBIN (else PTX the driver compiled).
    public let loadedCubin: Bool

    private let context: CUDAContext
    private let blas: CUBLAS
    private let blasHandle: OpaquePointer?
    private let blasVersion: Int
    private let module: OpaquePointer?
    private let functions: [Kernel: OpaquePointer]

    private var driver: CUDADriver { context.driver }
    private var stream: OpaquePointer? { context.stream }

    /// Checks, without creating anything on the device, that a CUDA
    /// accelerator could start: the driver, device `deviceOrdinal`, cuBLAS and NVRTC.
    /// Never crashes on a machine without a GPU.
    public static func probe(deviceOrdinal: Int = 0) -> Result<DeviceInfo, UserError> {
        do {
            let driver = try CUDADriver()
            let info = try deviceInfo(driver, ordinal: deviceOrdinal)
            _ = try CUBLAS()
            _ = try KernelCompiler()
            return .success(info)
        } catch let error as UserError {
            return .failure(error)
        } catch {
            return .failure(UserError("\(error)"))
        }
    }

    /// Opens the libraries, compiles the kernels for the device with NVRTC,
    /// and sets up cuBLAS on one stream (TF32 only when `allowTF32`).
    ///
    /// - Throws: `UserError` (one line) when a library, the device or the
    ///   kernel build is missing or fails.
    public init(deviceOrdinal: Int = 0, allowTF32: Bool = false) throws {
        let driver = try CUDADriver()
        device = try Self.deviceInfo(driver, ordinal: deviceOrdinal)
        blas = try CUBLAS()
        let compiler = try KernelCompiler()
        let compiled = try compiler.compile(capability: device.computeCapability)
        self.allowTF32 = allowTF32
        loadedCubin = compiled.isCubin

        var cuDevice: Int32 = 0
        try driver.check(driver.cuDeviceGet(&cuDevice, Int32(deviceOrdinal)), "cuDeviceGet")
        context = try CUDAContext(driver: driver, device: cuDevice)

        var module: OpaquePointer?
        let loaded = compiled.image.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress!) }
        if loaded != 0 {
            let nvrtc = compiler.version
            throw UserError("loading the kernels (\(compiled.architecture), NVRTC \(nvrtc.major).\(nvrtc.minor)) failed with \(driver.errorName(loaded)); the driver supports CUDA \(device.driverVersion / 1000).\(device.driverVersion % 1000 / 10): update the driver or use an NVRTC no newer than it, or use --device cpu")
        }
        self.module = module
        var functions: [Kernel: OpaquePointer] = [:]
        for kernel in Kernel.allCases {
            var function: OpaquePointer?
            try driver.check(driver.cuModuleGetFunction(&function, module, kernel.rawValue), "cuModuleGetFunction(\(kernel.rawValue))")
            functions[kernel] = function
        }
        self.functions = functions

        var handle: OpaquePointer?
        var status = blas.cublasCreate(&handle)
        guard status == 0 else { throw UserError("cublasCreate_v2 failed with cublasStatus \(status); check that cuBLAS matches the driver, or use --device cpu") }
        blasHandle = handle
        status = blas.cublasSetStream(handle, context.stream)
        if status == 0 { status = blas.cublasSetMathMode(handle, allowTF32 ? CUBLAS.tf32TensorOpMath : CUBLAS.defaultMath) }
        guard status == 0 else { throw UserError("configuring cuBLAS failed with cublasStatus \(status); use --device cpu") }
        var version: Int32 = 0
        _ = blas.cublasGetVersion(handle, &version)
        blasVersion = Int(version)
    }

    deinit {
        context.synchronize()
        _ = blas.cublasDestroy(blasHandle)
        _ = driver.cuModuleUnload(module)
    }

    /// Reads the driver's description of device `ordinal`.
    static func deviceInfo(_ driver: CUDADriver, ordinal: Int) throws -> DeviceInfo {
        let initialized = driver.cuInit(0)
        if initialized == 100 {  // CUDA_ERROR_NO_DEVICE
            throw UserError("the NVIDIA driver is installed but sees no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE); use --device cpu")
        }
        try driver.check(initialized, "cuInit")
        var count: Int32 = 0, version: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw UserError("no CUDA device found; use --device cpu") }
        guard ordinal >= 0 && ordinal < Int(count) else {
            throw UserError("device \(ordinal): only \(count) CUDA device\(count == 1 ? "" : "s") (0…\(count - 1)); pick one of those or use --device cpu")
        }
        try driver.check(driver.cuDriverGetVersion(&version), "cuDriverGetVersion")
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        var name = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&name, Int32(name.count), device), "cuDeviceGetName")
        var major: Int32 = 0, minor: Int32 = 0, memory = 0
        try driver.check(driver.cuDeviceGetAttribute(&major, CUDADriver.computeCapabilityMajor, device), "cuDeviceGetAttribute")
        try driver.check(driver.cuDeviceGetAttribute(&minor, CUDADriver.computeCapabilityMinor, device), "cuDeviceGetAttribute")
        try driver.check(driver.cuDeviceTotalMem(&memory, device), "cuDeviceTotalMem_v2")
        return DeviceInfo(ordinal: ordinal, deviceCount: Int(count), name: String(cString: name),
                          computeCapability: Int(major * 10 + minor), totalMemory: memory, driverVersion: Int(version))
    }

    public var isHostMemory: Bool { false }

    public var name: String {
        let blasText = "cuBLAS \(blasVersion / 10000).\(blasVersion % 10000 / 100)"
        return "cuda:\(device.ordinal) (\(device.name), sm_\(device.computeCapability), \(blasText)\(allowTF32 ? ", TF32" : ""))"
    }

    /// Waits until every queued op has finished.
    public func synchronize() { context.synchronize() }

    // MARK: - Launching

    /// One kernel argument, passed by value in an 8-byte slot.
    private enum Argument {
        case pointer(UInt64), int32(Int32), int64(Int64), float(Float), uint64(UInt64)
    }

    /// Device address of a tensor's first value.
    private func address(_ tensor: Tensor) -> UInt64 {
        UInt64(tensor.storage.address) + UInt64(tensor.offset) * UInt64(MemoryLayout<Float>.stride)
    }

    private func pointer(_ tensor: Tensor) -> Argument { .pointer(address(tensor)) }
    private func pointer(_ tensor: Tensor?) -> Argument { tensor.map(pointer) ?? .pointer(0) }
    private func count(_ n: Int) -> Argument { .int64(Int64(n)) }

    /// Blocks for a grid-stride loop over n values (capped: each thread loops).
    private func blocks(_ n: Int) -> Int { min((n + CUDAKernels.blockSize - 1) / CUDAKernels.blockSize, 4096) }

    /// Threads for a one-block-per-row kernel over rows of k values.
    private func rowThreads(_ k: Int) -> Int { min(CUDAKernels.blockSize, max(32, (k + 31) / 32 * 32)) }

    private func launch(_ kernel: Kernel, blocks: Int, threads: Int = CUDAKernels.blockSize, _ arguments: [Argument]) {
        guard blocks > 0 else { return }
        context.makeCurrent()
        let slots = UnsafeMutableRawPointer.allocate(byteCount: 8 * max(arguments.count, 1), alignment: 8)
        defer { slots.deallocate() }
        var parameters: [UnsafeMutableRawPointer?] = []
        for (i, argument) in arguments.enumerated() {
            let slot = slots + 8 * i
            switch argument {
            case .pointer(let v), .uint64(let v): slot.storeBytes(of: v, as: UInt64.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            }
            parameters.append(slot)
        }
        let result = parameters.withUnsafeMutableBufferPointer {
            driver.cuLaunchKernel(functions[kernel]!, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, 0, stream, $0.baseAddress, nil)
        }
        context.expectSuccess(result, "cuLaunchKernel(\(kernel.rawValue))")
    }

    // MARK: - Memory

    public func allocate(_ count: Int) -> DeviceStorage {
        context.makeCurrent()
        var address: UInt64 = 0
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let result = driver.cuMemAlloc(&address, bytes)
        if result != 0 {
            // The protocol's allocate cannot throw; the CPU backend stops the same way.
            fatalError("CUDA: cannot allocate \(bytes) bytes of device memory (\(driver.errorName(result))); use a smaller model or batch, or --device cpu")
        }
        context.expectSuccess(driver.cuMemsetD32Async(address, 0, max(count, 1), stream), "cuMemsetD32Async")
        let context = self.context
        return DeviceStorage(count: count, address: UInt(address)) { context.free($0) }
    }

    public func copy(_ source: UnsafeBufferPointer<Float>, to target: Tensor) {
        precondition(source.count == target.count, "copy: \(source.count) host values into a tensor of \(target.count)")
        guard let base = source.baseAddress, source.count > 0 else { return }
        context.makeCurrent()
        // From pageable memory the call returns once the values are staged, so
        // the caller may reuse its buffer at once.
        context.expectSuccess(driver.cuMemcpyHtoDAsync(address(target), base, source.count * 4, stream), "cuMemcpyHtoDAsync_v2")
    }

    public func allocateHostBuffer(_ count: Int) -> HostBuffer {
        context.makeCurrent()
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let result = driver.cuMemAllocHost(&raw, bytes)
        guard result == 0, let raw else {
            fatalError("CUDA: cannot allocate \(bytes) bytes of page-locked host memory (\(driver.errorName(result))); use a smaller batch, or --device cpu")
        }
        memset(raw, 0, bytes)
        let context = self.context
        return HostBuffer(baseAddress: raw.assumingMemoryBound(to: Float.self), count: count, fence: CUDAEvent(context)) {
            context.freeHost(UnsafeMutableRawPointer($0))
        }
    }

    public func copy(_ source: HostBuffer, to target: Tensor) {
        precondition(target.count <= source.count, "copy: a host buffer of \(source.count) values into a tensor of \(target.count)")
        guard target.count > 0 else { return }
        context.makeCurrent()
        // From page-locked memory the copy runs later, in stream order: the
        // buffer's event marks when it has been read.
        context.expectSuccess(driver.cuMemcpyHtoDAsync(address(target), source.baseAddress, target.count * 4, stream),
                              "cuMemcpyHtoDAsync_v2")
        source.fence?.record()
    }

    public func copy(_ source: Tensor, to target: UnsafeMutableBufferPointer<Float>) {
        precondition(source.count == target.count, "copy: a tensor of \(source.count) into \(target.count) host values")
        guard let base = target.baseAddress, target.count > 0 else { return }
        context.makeCurrent()
        context.expectSuccess(driver.cuMemcpyDtoHAsync(base, address(source), source.count * 4, stream), "cuMemcpyDtoHAsync_v2")
        context.synchronize()
    }

    public func fill(_ tensor: Tensor, with value: Float) {
        guard tensor.count > 0 else { return }
        context.makeCurrent()
        context.expectSuccess(driver.cuMemsetD32Async(address(tensor), value.bitPattern, tensor.count, stream), "cuMemsetD32Async")
    }

    // MARK: - Linear algebra

    public func gemm(_ shape: GEMMShape, alpha: Float, _ a: Tensor, _ b: Tensor, beta: Float, _ c: Tensor) {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        // cuBLAS is column-major, where a row-major (r × c) matrix reads as its
        // transpose. So row-major C = op(A)·op(B) is computed as the
        // column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: operands swapped, each leading
        // dimension the row-major column count.
        context.makeCurrent()
        var alpha = alpha, beta = beta
        let status = blas.cublasSgemm(
            blasHandle,
            shape.transposeB ? CUBLAS.transpose : CUBLAS.noTranspose,
            shape.transposeA ? CUBLAS.transpose : CUBLAS.noTranspose,
            Int32(n), Int32(m), Int32(k), &alpha,
            UnsafeRawPointer(bitPattern: UInt(address(b))), Int32(max(b.columns, 1)),
            UnsafeRawPointer(bitPattern: UInt(address(a))), Int32(max(a.columns, 1)),
            &beta, UnsafeMutableRawPointer(bitPattern: UInt(address(c))), Int32(max(c.columns, 1)))
        if status != 0 { fatalError("CUDA: cublasSgemm_v2 (\(m)×\(k)·\(k)×\(n)) failed with cublasStatus \(status)") }
    }

    public func addBias(_ bias: Tensor, to x: Tensor) {
        precondition(bias.count == x.columns)
        launch(.addBias, blocks: blocks(x.count), [pointer(x), pointer(bias), count(x.count), .int32(Int32(x.columns))])
    }

    public func sumRows(_ x: Tensor, into target: Tensor, beta: Float) {
        precondition(target.count == x.columns)
        let threads = CUDAKernels.blockSize
        launch(.sumRows, blocks: (x.columns + threads - 1) / threads,
               [pointer(x), pointer(target), .int32(Int32(x.rows)), .int32(Int32(x.columns)), .float(beta)])
    }

    public func multiply(_ a: Tensor, _ b: Tensor, into target: Tensor) {
        precondition(a.count == b.count && a.count == target.count)
        launch(.multiply, blocks: blocks(a.count), [pointer(a), pointer(b), pointer(target), count(a.count)])
    }

    // MARK: - Activations

    public func activate(_ activation: Activation, _ input: Tensor, into output: Tensor) {
        precondition(input.count == output.count)
        switch activation {
        case .softmax:
            guard input.columns > 0 else { return }
            launch(.softmaxRows, blocks: input.rows, threads: rowThreads(input.columns),
                   [pointer(input), pointer(output), .int32(Int32(input.columns))])
        case .linear where address(input) == address(output):
            return
        default:
            launch(.activate, blocks: blocks(input.count),
                   [pointer(input), pointer(output), count(input.count), .int32(activation.code), .float(activation.slope)])
        }
    }

    public func activationBackward(_ activation: Activation, output: Tensor, gradient: Tensor, into result: Tensor) {
        precondition(output.count == gradient.count && output.count == result.count)
        switch activation {
        case .softmax:
            guard output.columns > 0 else { return }
            launch(.softmaxBackward, blocks: output.rows, threads: rowThreads(output.columns),
                   [pointer(output), pointer(gradient), pointer(result), .int32(Int32(output.columns))])
        case .linear where address(gradient) == address(result):
            return
        default:
            launch(.activationBackward, blocks: blocks(output.count),
                   [pointer(output), pointer(gradient), pointer(result), count(output.count),
                    .int32(activation.code), .float(activation.slope)])
        }
    }

    // MARK: - Losses

    public func softmaxCrossEntropy(logits: Tensor, targets: Tensor, sparse: Bool, probabilities: Tensor,
                                    gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        let k = logits.columns, rows = logits.rows
        precondition(probabilities.count == logits.count && statistics.count >= Statistic.width)
        precondition(targets.rows == rows && targets.columns == (sparse ? 1 : k))
        guard k > 0 else { return }
        launch(.softmaxCrossEntropy, blocks: rows, threads: rowThreads(k),
               [pointer(logits), pointer(targets), pointer(probabilities), pointer(gradient),
                .int32(Int32(k)), .int32(sparse ? 1 : 0), .float(gradientScale), pointer(statistics)])
    }

    public func sigmoidBinaryCrossEntropy(logits: Tensor, targets: Tensor, probabilities: Tensor,
                                          gradient: Tensor?, gradientScale: Float, statistics: Tensor) {
        precondition(targets.count == logits.count && probabilities.count == logits.count)
        precondition(statistics.count >= Statistic.width)
        let outputs = Float(max(logits.columns, 1))
        let perOutput = gradientScale / outputs
        launch(.sigmoidBinaryCrossEntropy, blocks: blocks(logits.count),
               [pointer(logits), pointer(targets), pointer(probabilities), pointer(gradient), count(logits.count),
                .float(perOutput), .float(outputs), pointer(statistics)])
    }

    public func squaredError(outputs: Tensor, targets: Tensor, gradient: Tensor?, gradientFactor factor: Float,
                             accuracy: AccuracyRule, statistics: Tensor) {
        precondition(targets.count == outputs.count && statistics.count >= Statistic.width)
        let o = outputs.columns
        var threshold: Int32 = 0, cut: Float = 0
        if case .threshold(let value) = accuracy { threshold = 1; cut = value }
        launch(.squaredError, blocks: blocks(outputs.count),
               [pointer(outputs), pointer(targets), pointer(gradient), count(outputs.count), .float(factor),
                .int32(threshold), .float(cut), .float(Float(max(o, 1))), pointer(statistics)])
        if accuracy == .argmax && o > 0 {
            let threads = CUDAKernels.blockSize
            launch(.argmaxMatches, blocks: (outputs.rows + threads - 1) / threads,
                   [pointer(outputs), pointer(targets), .int32(Int32(outputs.rows)), .int32(Int32(o)), pointer(statistics)])
        }
    }

    // MARK: - Regularization

    public func dropout(_ input: Tensor, rate: Float, key: UInt64, rowOffset: Int, mask: Tensor, into output: Tensor) {
        precondition(input.count == mask.count && input.count == output.count)
        let keep = 1 / (1 - rate), base = UInt64(rowOffset * input.columns)
        launch(.dropout, blocks: blocks(input.count),
               [pointer(input), pointer(mask), pointer(output), count(input.count), .float(rate), .float(keep),
                .uint64(key), .uint64(base)])
    }

    public func addPenalty(weights: Tensor, gradient: Tensor, l1: Float, l2: Float, weight: Float, statistics: Tensor) {
        precondition(weights.count == gradient.count && statistics.count >= 1)
        launch(.addPenalty, blocks: blocks(weights.count),
               [pointer(weights), pointer(gradient), count(weights.count), .float(l1), .float(l2), .float(weight),
                pointer(statistics)])
    }

    // MARK: - Optimizer

    public func update(_ step: UpdateStep, parameters: Tensor, gradients: Tensor, state: [Tensor],
                       guarded: UpdateGuard?) {
        precondition(parameters.count == gradients.count && state.count == step.slotCount)
        precondition(state.allSatisfy { $0.count == parameters.count })
        let n = parameters.count, grid = blocks(n)
        let w = pointer(parameters), g = pointer(gradients)
        let guardArguments: [Argument] = [pointer(guarded?.record), .int32(Int32(bitPattern: FiniteGuard.word(guarded?.step ?? 0))),
                                                .int32(guarded?.trial == true ? 0 : 1)]
        switch step {
        case .sgd(let lr, let momentum, let look, let direct, let keep):
            launch(.sgd, blocks: grid, [w, g, pointer(state.first), count(n), .float(lr), .float(momentum), .float(look),
                                        .float(direct), .float(keep)] + guardArguments)
        case .rmsprop(let lr, let rho, let rest, let epsilon, let momentum, let keep):
            launch(.rmsprop, blocks: grid, [w, g, pointer(state[0]), pointer(state.count > 1 ? state[1] : nil), count(n),
                                            .float(lr), .float(rho), .float(rest), .float(epsilon), .float(momentum),
                                            .float(keep)] + guardArguments)
        case .adam(let alpha, let c1, let c2, let epsilon, let keep):
            launch(.adam, blocks: grid, [w, g, pointer(state[0]), pointer(state[1]), count(n), .float(alpha), .float(c1),
                                         .float(c2), .float(epsilon), .float(keep)] + guardArguments)
        }
    }

    public func checkFinite(_ tensor: Tensor, step: Int, flag: Tensor) {
        precondition(flag.count == FiniteGuard.width && step > 0)
        launch(.checkFinite, blocks: blocks(tensor.count),
               [pointer(tensor), count(tensor.count), pointer(flag), .int32(Int32(bitPattern: FiniteGuard.word(step)))])
    }
}

// MARK: - Events

/// An event on the accelerator's stream: `record` marks the work queued so
/// far, `wait` blocks the host until that work is done.
final class CUDAEvent: TransferFence {
    private let context: CUDAContext
    private let event: OpaquePointer?

    init(_ context: CUDAContext) {
        self.context = context
        var event: OpaquePointer?
        context.makeCurrent()
        context.expectSuccess(context.driver.cuEventCreate(&event, CUDADriver.eventDisableTiming), "cuEventCreate")
        self.event = event
    }

    func record() {
        context.makeCurrent()
        context.expectSuccess(context.driver.cuEventRecord(event, context.stream), "cuEventRecord")
    }

    func wait() {
        context.makeCurrent()
        context.expectSuccess(context.driver.cuEventSynchronize(event), "cuEventSynchronize")
    }

    deinit {
        context.makeCurrent()
        _ = context.driver.cuEventDestroy(event)
    }
}
