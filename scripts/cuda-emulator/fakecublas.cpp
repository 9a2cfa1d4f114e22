// A CPU stand-in for libcublas.so.12's Sgemm, column-major per the BLAS
// definition, rejecting leading dimensions that real cuBLAS rejects.
#include <cstdint>
#include <cstdio>
extern "C" {
static int handleToken;
int cublasCreate_v2(void** handle) { *handle = &handleToken; return 0; }
int cublasDestroy_v2(void*) { return 0; }
int cublasGetVersion_v2(void*, int* version) { *version = 120900; return 0; }
int cublasSetStream_v2(void*, void*) { return 0; }
int cublasSetMathMode(void*, int mode) { return mode == 0 || mode == 3 ? 0 : 7; }
int cublasSgemm_v2(void*, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
    auto max1 = [](int v) { return v < 1 ? 1 : v; };
    if (m < 0 || n < 0 || k < 0 || lda < max1(ta == 0 ? m : k) || ldb < max1(tb == 0 ? k : n) || ldc < max1(m)) {
        fprintf(stderr, "fakecublas: invalid Sgemm arguments m=%d n=%d k=%d lda=%d ldb=%d ldc=%d\n", m, n, k, lda, ldb, ldc);
        return 7;  // CUBLAS_STATUS_INVALID_VALUE
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                float a = ta == 0 ? A[i + (int64_t)l * lda] : A[l + (int64_t)i * lda];
                float b = tb == 0 ? B[l + (int64_t)j * ldb] : B[j + (int64_t)l * ldb];
                s += (double)a * b;
            }
            float& c = C[i + (int64_t)j * ldc];
            c = (float)(*alpha * s) + (*beta == 0 ? 0.0f : *beta * c);
        }
    return 0;
}
}
