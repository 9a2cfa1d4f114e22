// The gradients' sum through one host's shared memory. When every rank of
// a job shares one host, each rank's gradient buffer (and parameter buffer)
// can live in an MPI-3 shared window, where the other ranks read it
// directly: after a barrier, rank r adds up its part of every rank's buffer
// (`nn_sum_buffers`, in rank order) into its own buffer; after a second
// barrier, each rank copies the other parts of the sum from their owners'
// buffers, and a third barrier keeps the next step's backward from
// overwriting a part still being read. Each rank reads the other ranks'
// values once and no message is sent, where Open MPI's algorithms copy
// through buffers of their own, so the sum costs about what the memory
// traffic does. The reduce-scatter of the sharded update stops after the
// second barrier; its all-gather of the parameters is the copies between
// two barriers.
//
// Every element is summed by one rank in one fixed order, so all ranks hold
// the same bits; with two ranks (one addition, which commutes) they are
// Open MPI's bits too.

import CKernels
import CMPI
import NNCore
#if canImport(Glibc)
import Glibc
#endif

/// An MPI-3 shared window holding one buffer of floats per rank, every
/// rank's readable by all (passive-target epoch open for its lifetime).
final class SharedWindow {
    private var window: MPI_Win?
    /// Floats in each rank's buffer.
    let count: Int
    /// Each rank's buffer, by rank.
    let buffers: [UnsafeMutablePointer<Float>]
    /// This rank's buffer.
    let mine: UnsafeMutablePointer<Float>

    /// Allocates `count` floats per rank on `comm`, whose ranks must share
    /// one host (collective), when every rank `wanted` it and `directory`
    /// (where Open MPI backs the window) has room. Nil, on every rank,
    /// otherwise or when any rank's allocation failed.
    init?(count: Int, comm: MPI_Comm, rank: Int, size: Int, wanted: Bool = true, directory: String) {
        let bytes = Self.bytes(count: count)
        // Open MPI hangs, rather than fail, when rank 0 cannot create the
        // backing file, and a full tmpfs would fault later: rank 0 checks
        // the room first, and its verdict joins the others' wishes.
        var refused: Int32 = (!wanted || (rank == 0 && !Self.hasRoom(bytes: size * bytes, in: directory))) ? 1 : 0
        MPI_Allreduce(nn_mpi_in_place(), &refused, 1, nn_mpi_int(), nn_mpi_max(), comm)
        guard refused == 0 else { return nil }
        var base: UnsafeMutableRawPointer? = nil
        var made: MPI_Win? = nil
        var failed: Int32 = MPI_Win_allocate_shared(MPI_Aint(bytes), Int32(MemoryLayout<Float>.stride), nn_mpi_info_null(),
                                                    comm, &base, &made) == nn_mpi_success() && base != nil ? 0 : 1
        var pointers: [UnsafeMutablePointer<Float>] = []
        if failed == 0 {
            for peer in 0..<size {
                var peerBytes: MPI_Aint = 0, unit: Int32 = 0
                var pointer: UnsafeMutableRawPointer? = nil
                guard MPI_Win_shared_query(made, Int32(peer), &peerBytes, &unit, &pointer) == nn_mpi_success(),
                      let pointer, peerBytes >= count * MemoryLayout<Float>.stride else {
                    failed = 1
                    break
                }
                pointers.append(pointer.bindMemory(to: Float.self, capacity: count))
            }
        }
        MPI_Allreduce(nn_mpi_in_place(), &failed, 1, nn_mpi_int(), nn_mpi_max(), comm)
        // A window some rank lacks cannot be freed collectively: it stays until MPI_Finalize.
        guard failed == 0, let made else { return nil }
        MPI_Win_lock_all(nn_mpi_mode_nocheck(), made)
        window = made
        self.count = count
        buffers = pointers
        mine = pointers[rank]
    }

    /// Bytes of one rank's buffer of `count` floats: whole pages, so no
    /// cache line is written by two ranks.
    static func bytes(count: Int) -> Int {
        (count * MemoryLayout<Float>.stride + 4095) / 4096 * 4096
    }

    /// Whether `directory` exists and has room for a window of `bytes` four
    /// times over: a trainer's two (gradients, parameters) and the
    /// measurement's scratch one, whose pages take room only once touched,
    /// and as much again for whatever else uses it.
    static func hasRoom(bytes: Int, in directory: String) -> Bool {
        var status = statvfs()
        guard statvfs(directory, &status) == 0 else { return false }
        let free = Int(status.f_bavail).multipliedReportingOverflow(by: Int(status.f_frsize))
        let needed = bytes.multipliedReportingOverflow(by: 4)
        return !needed.overflow && (free.overflow || free.partialValue >= needed.partialValue)
    }

    /// Where `buffer` starts in this rank's buffer, when it lies inside it.
    func offset(of buffer: UnsafeMutableBufferPointer<Float>) -> Int? {
        guard let base = buffer.baseAddress, base >= mine, base + buffer.count <= mine + count else { return nil }
        return base - mine
    }

    /// Makes this rank's writes visible to the others and theirs to it
    /// (around each barrier: MPI's shared-memory model asks for it).
    func synchronize() {
        if let window { MPI_Win_sync(window) }
    }

    /// Frees the window (collective).
    func free() {
        guard window != nil else { return }
        MPI_Win_unlock_all(window)
        MPI_Win_free(&window)
        window = nil
    }
}

extension MPICommunicator {
    public func allocateShared(count: Int, wanted: Bool) -> DeviceStorage? {
        guard size > 1, localSize == size, count > 0,
              let window = SharedWindow(count: count, comm: comm, rank: rank, size: size, wanted: wanted,
                                        directory: sharedBackingDirectory()) else { return nil }
        shared.append(window)
        // The window, freed at `finalize`, owns the memory.
        return DeviceStorage(count: count, address: UInt(bitPattern: window.mine), release: { _ in })
    }

    /// The directory Open MPI puts shared windows' backing files in
    /// (`osc_sm_backing_directory`, read through the MPI tool interface);
    /// its Linux default, /dev/shm, when it cannot be read.
    func sharedBackingDirectory() -> String {
        let fallback = "/dev/shm"
        var index: Int32 = 0, count: Int32 = 0
        guard startTools(), MPI_T_cvar_get_index("osc_sm_backing_directory", &index) == nn_mpi_success() else { return fallback }
        var handle: MPI_T_cvar_handle?
        guard MPI_T_cvar_handle_alloc(index, nil, &handle, &count) == nn_mpi_success() else { return fallback }
        defer { MPI_T_cvar_handle_free(&handle) }
        var text = [CChar](repeating: 0, count: Int(max(count, 1)) + 1)
        guard MPI_T_cvar_read(handle, &text) == nn_mpi_success() else { return fallback }
        let directory = String(cString: text)
        return directory.isEmpty ? fallback : directory
    }

    /// The shared window `buffer` lies in, and where in this rank's part.
    func sharedWindow(holding buffer: UnsafeMutableBufferPointer<Float>) -> (SharedWindow, Int)? {
        for window in shared {
            if let offset = window.offset(of: buffer) { return (window, offset) }
        }
        return nil
    }

    /// Sums `count` floats at `offset` of every rank's shared buffer (see
    /// the top of this file): whole on every rank, or, given `parts`, only
    /// `parts[rank]` lands on rank `rank`. Watched as one allreduce.
    func sharedSum(_ shared: SharedWindow, offset: Int, count: Int, parts given: [Range<Int>]?) {
        let parts = given ?? consecutiveParts(count: count, ranks: size)
        watched(given == nil ? .allreduce : .reduceScatter) {
            var code = sharedBarrier(shared)
            guard code == nn_mpi_success() else { return code }
            let part = parts[rank]
            if !part.isEmpty {
                let inputs: [UnsafePointer<Float>?] = shared.buffers.map { UnsafePointer($0 + offset + part.lowerBound) }
                inputs.withUnsafeBufferPointer {
                    nn_sum_buffers($0.baseAddress, size, shared.mine + offset + part.lowerBound, part.count)
                }
            }
            code = sharedBarrier(shared)
            guard code == nn_mpi_success(), given == nil else { return code }
            copyParts(shared, offset: offset, parts: parts)
            return sharedBarrier(shared)
        }
    }

    /// Copies every other rank's `parts[owner]` of `count` floats at
    /// `offset` from its shared buffer into this rank's, between barriers
    /// (the last one keeps an owner from changing its part before every
    /// copy is done). Watched as one all-gather.
    func sharedGather(_ shared: SharedWindow, offset: Int, parts: [Range<Int>]) {
        watched(.allgather) {
            let code = sharedBarrier(shared)
            guard code == nn_mpi_success() else { return code }
            copyParts(shared, offset: offset, parts: parts)
            return sharedBarrier(shared)
        }
    }

    /// This rank's copy of every other rank's part.
    private func copyParts(_ shared: SharedWindow, offset: Int, parts: [Range<Int>]) {
        for (owner, part) in parts.enumerated() where owner != rank && !part.isEmpty {
            (shared.mine + offset + part.lowerBound).update(from: shared.buffers[owner] + offset + part.lowerBound,
                                                             count: part.count)
        }
    }

    /// A barrier between shared-memory phases, waiting as `wait` asks,
    /// with the window's memory synchronized on both sides.
    private func sharedBarrier(_ shared: SharedWindow) -> Int32 {
        shared.synchronize()
        defer { shared.synchronize() }
        switch wait {
        case .blocking: return MPI_Barrier(comm)
        case .yielding(let backoff): return yieldingBarrier(backoff)
        }
    }
}
