// OpenMPI defines its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...)
// as macros over addresses of global objects, which Swift cannot import.
// These functions hand the same values to Swift.
#include <mpi.h>

static inline MPI_Comm nn_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm nn_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype nn_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype nn_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype nn_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype nn_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype nn_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype nn_mpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op nn_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op nn_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op nn_mpi_min(void) { return MPI_MIN; }
static inline void *nn_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Info nn_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Request nn_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *nn_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int nn_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline int nn_mpi_success(void) { return MPI_SUCCESS; }
static inline int nn_mpi_errors_return(MPI_Comm comm) { return MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN); }

// Atomics for the watchdog's view of the main thread (C11, since Swift's
// standard library has none for plain integers).
#include <stdatomic.h>
#include <stdint.h>
static inline void nn_atomic_store(uint64_t *p, uint64_t v) { atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_release); }
static inline uint64_t nn_atomic_load(uint64_t *p) { return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire); }
static inline int nn_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int nn_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int nn_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline MPI_Datatype nn_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype nn_mpi_char(void) { return MPI_CHAR; }
static inline MPI_Errhandler nn_mpi_errors_return_handler(void) { return MPI_ERRORS_RETURN; }
static inline int nn_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int nn_mpi_undefined(void) { return MPI_UNDEFINED; }
static inline int nn_mpi_mode_nocheck(void) { return MPI_MODE_NOCHECK; }
