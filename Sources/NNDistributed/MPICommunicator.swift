// The Open MPI implementation of `Communicator`.

import CMPI
import NNCore
#if canImport(Glibc)
import Glibc
#endif

/// Collectives over `MPI_COMM_WORLD`.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    private let world: MPI_Comm

    /// Initializes MPI (once per process). Open MPI reads its settings, such
    /// as the allreduce algorithm, from the environment at this point.
    public init() {
        MPI_Init(nil, nil)
        world = nn_mpi_comm_world()
        var value: Int32 = 0
        MPI_Comm_rank(world, &value)
        rank = Int(value)
        MPI_Comm_size(world, &value)
        size = Int(value)
        var local: MPI_Comm? = nn_mpi_comm_null()
        MPI_Comm_split_type(world, nn_mpi_comm_type_shared(), Int32(rank), nn_mpi_info_null(), &local)
        MPI_Comm_rank(local, &value)
        localRank = Int(value)
        MPI_Comm_size(local, &value)
        localSize = Int(value)
        MPI_Comm_free(&local)
    }

    public var name: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let version = String(cString: buffer).split(separator: ",").first.map(String.init) ?? "MPI"
        return "\(version), \(size) rank\(size == 1 ? "" : "s")"
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_float(), nn_mpi_sum(), world)
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        MPI_Allreduce(nn_mpi_in_place(), base, Int32(buffer.count), nn_mpi_double(), nn_mpi_sum(), world)
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        guard size > 1, let base = buffer.baseAddress, buffer.count > 0 else { return }
        // Counts are Int32: send large buffers in pieces.
        let chunk = 1 << 30
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            MPI_Bcast(base + offset, Int32(n), nn_mpi_byte(), Int32(root), world)
            offset += n
        }
    }

    public func allGather(_ value: UInt64) -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        MPI_Allgather(&mine, 1, nn_mpi_uint64(), &all, 1, nn_mpi_uint64(), world)
        return all
    }

    public func barrier() { MPI_Barrier(world) }

    public func finalize() { MPI_Finalize() }
}

/// Open MPI's allreduce algorithms (`coll_tuned_allreduce_algorithm`).
public enum AllreduceTuning {
    /// Open MPI's numbering of `coll_tuned_allreduce_algorithm` values.
    public static let algorithms = [1: "basic linear", 2: "nonoverlapping", 3: "recursive doubling",
                                    4: "ring", 5: "segmented ring", 6: "rabenseifner"]

    /// The ring: measured fastest for gradient-sized buffers on one host.
    public static let ring = 4
}
