// Bare MPI timings for the benchmark scripts: what an allreduce of a given
// size costs with no trainer around it, and the point-to-point bandwidth the
// ring-allreduce model needs.

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
