// A CPU stand-in for libcublas.so.12's Sgemm, column-major per the BLAS
// definition, rejecting leading dimensions that real cuBLAS rejects.
//
// Like real cuBLAS, Sgemm is asynchronous: it is queued on the stream given to
// cublasSetStream_v2 and runs in order with the driver's other queued work.
// So this library links against the fake libcuda.so.1 and queues through its
// fakecudaEnqueue; the tests put both in one directory on LD_LIBRARY_PATH so
// that they share one instance of the driver's queue.
#include <cstdint>
#include <cstdio>
extern "C" {
int fakecudaEnqueue(void* stream, const char* name, void (*run)(void*), void* state);
int cuCtxSynchronize();

// A handle remembers its stream (NULL until cublasSetStream_v2).
struct Handle { void* stream = nullptr; };
int cublasCreate_v2(void** handle) { *handle = new Handle; return 0; }
// cublasDestroy implicitly synchronizes the device (cuBLAS documentation).
int cublasDestroy_v2(void* handle) { cuCtxSynchronize(); delete (Handle*)handle; return 0; }
int cublasGetVersion_v2(void*, int* version) { *version = 120900; return 0; }
int cublasSetStream_v2(void* handle, void* stream) { ((Handle*)handle)->stream = stream; return 0; }
int cublasSetMathMode(void*, int mode) { return mode == 0 || mode == 3 ? 0 : 7; }

// One queued C = α·op(A)·op(B) + β·C: α and β by value, the matrices by address.
struct Gemm {
    int ta, tb, m, n, k;
    float alpha, beta;
    const float* A; int lda;
    const float* B; int ldb;
    float* C; int ldc;
};
// Runs when the stream reaches it: reads A, B (and C when β ≠ 0), writes C.
static void runGemm(void* state) {
    const Gemm& g = *(Gemm*)state;
    for (int j = 0; j < g.n; j++)
        for (int i = 0; i < g.m; i++) {
            double s = 0;
            for (int l = 0; l < g.k; l++) {
                float a = g.ta == 0 ? g.A[i + (int64_t)l * g.lda] : g.A[l + (int64_t)i * g.lda];
                float b = g.tb == 0 ? g.B[l + (int64_t)j * g.ldb] : g.B[j + (int64_t)l * g.ldb];
                s += (double)a * b;
            }
            float& c = g.C[i + (int64_t)j * g.ldc];
            c = (float)(g.alpha * s) + (g.beta == 0 ? 0.0f : g.beta * c);
        }
    delete (Gemm*)state;
}

int cublasSgemm_v2(void* handle, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
    // Argument errors are reported by the call itself, before anything is queued.
    auto max1 = [](int v) { return v < 1 ? 1 : v; };
    if (m < 0 || n < 0 || k < 0 || lda < max1(ta == 0 ? m : k) || ldb < max1(tb == 0 ? k : n) || ldc < max1(m)) {
        fprintf(stderr, "fakecublas: invalid Sgemm arguments m=%d n=%d k=%d lda=%d ldb=%d ldc=%d\n", m, n, k, lda, ldb, ldc);
        return 7;  // CUBLAS_STATUS_INVALID_VALUE
    }
    // In the default pointer mode (CUBLAS_POINTER_MODE_HOST) α and β are host
    // values, read before the call returns; A, B and C are read and written
    // only when the queued work runs.
    Gemm* gemm = new Gemm{ta, tb, m, n, k, *alpha, *beta, A, lda, B, ldb, C, ldc};
    void* stream = ((Handle*)handle)->stream;
    if (fakecudaEnqueue(stream, "cublasSgemm_v2", runGemm, gemm) != 0) {
        delete gemm;
        fprintf(stderr, "fakecublas: Sgemm on stream %p, which fakecuda does not know (cublasSetStream_v2 not called?)\n", stream);
        return 13;  // CUBLAS_STATUS_EXECUTION_FAILED
    }
    return 0;
}
}
