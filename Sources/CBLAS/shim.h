// OpenBLAS's CBLAS interface, including openblas_set_num_threads.
#include <cblas.h>
