// Bare MPI timings for the benchmark scripts: what an allreduce of a given
// size costs with no trainer around it, the point-to-point bandwidth the
// ring-allreduce model needs, and on one host the floor of any allreduce
// there (reading another rank's freshly written buffer).

import CMPI
import Foundation

/// Timings of raw MPI operations on `MPI_COMM_WORLD` (call on every rank).
public enum MPIBenchmarks {
    /// Mean seconds of one in-place `MPI_Allreduce` (sum) of `count` floats,
    /// over `iterations` calls after a warm-up; the slowest rank's mean.
    public static func allreduceSeconds(count: Int, iterations: Int) -> Double {
        let world = nn_mpi_comm_world()
        var buffer = [Float](repeating: 1e-6, count: count)
        func reduce() {
            buffer.withUnsafeMutableBufferPointer {
                _ = MPI_Allreduce(nn_mpi_in_place(), $0.baseAddress, Int32(count), nn_mpi_float(), nn_mpi_sum(), world)
            }
        }
        for _ in 0..<max(5, iterations / 10) { reduce() }
        MPI_Barrier(world)
        let start = MPI_Wtime()
        for _ in 0..<iterations { reduce() }
        var elapsed = (MPI_Wtime() - start) / Double(iterations)
        MPI_Allreduce(nn_mpi_in_place(), &elapsed, 1, nn_mpi_double(), nn_mpi_max(), world)
        return elapsed
    }

    /// Bytes per second from rank 0 to rank 1 and back (ping-pong of
    /// `bytes`-sized messages): the link bandwidth of the ring model
    /// t = 2(p − 1)/p · n / bandwidth.
    public static func pingPongBandwidth(bytes: Int, iterations: Int) -> Double {
        let world = nn_mpi_comm_world()
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        guard size >= 2 else { return 0 }
        var buffer = [UInt8](repeating: 7, count: bytes)
        func exchange() {
            buffer.withUnsafeMutableBytes { b in
                if rank == 0 {
                    MPI_Send(b.baseAddress, Int32(bytes), nn_mpi_byte(), 1, 0, world)
                    MPI_Recv(b.baseAddress, Int32(bytes), nn_mpi_byte(), 1, 0, world, nn_mpi_status_ignore())
                } else if rank == 1 {
                    MPI_Recv(b.baseAddress, Int32(bytes), nn_mpi_byte(), 0, 0, world, nn_mpi_status_ignore())
                    MPI_Send(b.baseAddress, Int32(bytes), nn_mpi_byte(), 0, 0, world)
                }
            }
        }
        for _ in 0..<3 { exchange() }
        MPI_Barrier(world)
        let start = MPI_Wtime()
        for _ in 0..<iterations { exchange() }
        let elapsed = MPI_Wtime() - start
        var bandwidth = rank == 0 ? Double(2 * bytes * iterations) / elapsed : 0
        MPI_Bcast(&bandwidth, 1, nn_mpi_double(), 0, world)
        return bandwidth
    }
}

extension MPICommunicator {
    /// Mean seconds for each rank of one host to read, straight from shared
    /// memory, what the other ranks have just written: `2(p − 1)/p · count`
    /// floats, the least any allreduce of `count` floats must bring to each
    /// rank (for two ranks, a whole buffer). Each round every rank writes its
    /// own `count` floats of a `SharedWindow` (as backward writes its
    /// gradients), the ranks meet at a barrier, and each reads its share
    /// from the next ranks' buffers with no MPI call and nothing written; the
    /// read alone is timed, and the slowest rank's mean returned. Nil when
    /// the ranks are not all on one host, or the window has no room.
    public func sharedReadSeconds(count: Int, iterations: Int) -> Double? {
        guard size > 1, localSize == size, count > 1,
              let window = SharedWindow(count: count, comm: comm, rank: rank, size: size,
                                        directory: sharedBackingDirectory()) else { return nil }
        defer { window.free() }
        let mine = window.mine
        // 2(p - 1)/p of a buffer, taken whole from the next ranks in turn.
        let share = 2 * (size - 1) * count / size
        var checksum: UInt64 = 0
        func read() {
            var left = share, peer = (rank + 1) % size
            while left > 0 {
                let words = min(left, count) / 2
                let source = UnsafeRawPointer(window.buffers[peer]).assumingMemoryBound(to: UInt64.self)
                var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0, d: UInt64 = 0
                var i = 0
                while i + 4 <= words {
                    a &+= source[i]; b &+= source[i + 1]; c &+= source[i + 2]; d &+= source[i + 3]
                    i += 4
                }
                checksum &+= a &+ b &+ c &+ d
                left -= min(left, count)
                peer = (peer + 1) % size
                if peer == rank { peer = (peer + 1) % size }
            }
        }
        var elapsed = 0.0
        for round in 0..<(iterations + 3) {
            for i in 0..<count { mine[i] = Float(round &+ i) }
            window.synchronize()
            MPI_Barrier(comm)
            window.synchronize()
            let start = MPI_Wtime()
            read()
            if round >= 3 { elapsed += MPI_Wtime() - start }
            MPI_Barrier(comm)
            // Stored where other ranks could read it, so the reads are not dropped as unused.
            mine[0] = Float(bitPattern: UInt32(truncatingIfNeeded: checksum))
        }
        var mean = elapsed / Double(iterations)
        MPI_Allreduce(nn_mpi_in_place(), &mean, 1, nn_mpi_double(), nn_mpi_max(), comm)
        return mean
    }
}
