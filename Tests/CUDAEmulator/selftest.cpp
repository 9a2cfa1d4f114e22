// Self-test of the CUDA emulator's stream semantics (fakecuda.cpp,
// fakecublas.cpp): queued work runs only when the host waits for it, so a
// host read before a synchronization sees stale data, as on a GPU.
// Linked against the built libcuda.so.1 and libcublas.so.12; run by
// Tests/CUDAEmulator/run before the Swift tests. Prints one line on
// success; on failure names the check and exits 1.
//
// The emulator's device memory is host memory, so some checks look at a
// device buffer directly to see whether queued work has run yet.
#include <sys/wait.h>
#include <unistd.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

extern "C" {
typedef int CUresult;
CUresult cuInit(unsigned);
CUresult cuDevicePrimaryCtxRetain(void** context, int device);
CUresult cuCtxSetCurrent(void* context);
CUresult cuCtxSynchronize();
CUresult cuStreamCreate(void** stream, unsigned flags);
CUresult cuStreamSynchronize(void* stream);
CUresult cuMemAlloc_v2(uint64_t* address, size_t bytes);
CUresult cuMemFree_v2(uint64_t address);
CUresult cuMemAllocHost_v2(void** pointer, size_t bytes);
CUresult cuMemFreeHost(void* pointer);
CUresult cuMemcpyHtoDAsync_v2(uint64_t device, const void* host, size_t bytes, void* stream);
CUresult cuMemcpyDtoHAsync_v2(void* host, uint64_t device, size_t bytes, void* stream);
CUresult cuMemcpyDtoDAsync_v2(uint64_t target, uint64_t source, size_t bytes, void* stream);
CUresult cuMemsetD32Async(uint64_t device, unsigned value, size_t count, void* stream);
CUresult cuEventCreate(void** event, unsigned flags);
CUresult cuEventRecord(void* event, void* stream);
CUresult cuEventSynchronize(void* event);
CUresult cuEventQuery(void* event);
CUresult cuEventDestroy_v2(void* event);
CUresult cuModuleLoadData(void** module, const void* image);
CUresult cuModuleGetFunction(void** function, void* module, const char* name);
CUresult cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void* stream, void** params, void** extra);
long fakecudaPendingWork();
int cublasCreate_v2(void** handle);
int cublasSetStream_v2(void* handle, void* stream);
int cublasSgemm_v2(void* handle, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc);
int cublasDestroy_v2(void* handle);
}

static int passed = 0;
static void check(bool condition, const char* what, int line) {
    if (!condition) {
        fprintf(stderr, "fakecuda selftest FAILED (selftest.cpp:%d): %s\n", line, what);
        exit(1);
    }
    passed++;
}
#define CHECK(condition, what) check((condition), (what), __LINE__)
#define OK(call) check((call) == 0, #call " returns CUDA_SUCCESS", __LINE__)

static bool equal(const float* values, const float* expected, int n) { return memcmp(values, expected, 4 * n) == 0; }
static bool poisoned(const float* values, int n) {
    for (int i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, values + i, 4);
        if (bits != 0x7fc00badu) return false;
    }
    return true;
}

// Runs `body` in a child process; true when it aborts with `message` on stderr.
static bool aborts(const std::function<void()>& body, const char* message) {
    int pipeEnds[2];
    if (pipe(pipeEnds) != 0) return false;
    pid_t child = fork();
    if (child == 0) {
        dup2(pipeEnds[1], 2);
        close(pipeEnds[0]);
        body();
        _exit(0);
    }
    close(pipeEnds[1]);
    std::string output;
    char buffer[512];
    for (ssize_t n; (n = read(pipeEnds[0], buffer, sizeof buffer)) > 0;) output.append(buffer, n);
    close(pipeEnds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && output.find(message) != std::string::npos;
}

int main() {
    void *context, *stream;
    OK(cuInit(0));
    OK(cuDevicePrimaryCtxRetain(&context, 0));
    OK(cuCtxSetCurrent(context));
    OK(cuStreamCreate(&stream, 0));
    const float one[4] = {1, 2, 3, 4}, two[4] = {5, 6, 7, 8};

    uint64_t a, b;
    OK(cuMemAlloc_v2(&a, 16));
    OK(cuMemAlloc_v2(&b, 16));
    float *pinnedA, *pinnedB;
    OK(cuMemAllocHost_v2((void**)&pinnedA, 16));
    OK(cuMemAllocHost_v2((void**)&pinnedB, 16));
    CHECK(poisoned(pinnedA, 4), "page-locked memory starts as the NaN poison");
    CHECK(poisoned((float*)a, 4), "device memory starts as the NaN poison");

    // Queued work does not run by itself.
    OK(cuMemcpyHtoDAsync_v2(a, one, 16, stream));
    OK(cuMemcpyHtoDAsync_v2(b, two, 16, stream));
    CHECK(fakecudaPendingWork() == 2, "two HtoD copies are pending");
    CHECK(poisoned((float*)a, 4), "device memory is unchanged before the queued HtoD copy runs");
    OK(cuStreamSynchronize(stream));
    CHECK(fakecudaPendingWork() == 0 && equal((float*)a, one, 4) && equal((float*)b, two, 4),
          "cuStreamSynchronize runs the queued copies");

    // (a) DtoH into page-locked memory is visible only after a synchronization.
    OK(cuMemcpyDtoHAsync_v2(pinnedA, a, 16, stream));
    CHECK(poisoned(pinnedA, 4), "(a) DtoH into page-locked memory is not visible before cuStreamSynchronize");
    OK(cuStreamSynchronize(stream));
    CHECK(equal(pinnedA, one, 4), "(a) DtoH into page-locked memory is visible after cuStreamSynchronize");

    // (b) cuEventSynchronize completes the work before the event, not after.
    float *pinnedC, *pinnedD;
    OK(cuMemAllocHost_v2((void**)&pinnedC, 16));
    OK(cuMemAllocHost_v2((void**)&pinnedD, 16));
    void *event, *never;
    OK(cuEventCreate(&event, 2));
    OK(cuEventCreate(&never, 0));
    OK(cuMemcpyDtoHAsync_v2(pinnedC, a, 16, stream));
    OK(cuEventRecord(event, stream));
    OK(cuMemcpyDtoHAsync_v2(pinnedD, b, 16, stream));
    // (c) cuEventQuery reports NOT_READY and runs nothing.
    CHECK(cuEventQuery(event) == 600, "(c) cuEventQuery is CUDA_ERROR_NOT_READY while work before the event is queued");
    CHECK(fakecudaPendingWork() == 3 && poisoned(pinnedC, 4), "(c) cuEventQuery runs no queued work");
    CHECK(cuEventQuery(never) == 0, "(c) an event never recorded is complete");
    OK(cuEventSynchronize(event));
    CHECK(equal(pinnedC, one, 4), "(b) cuEventSynchronize completes the copy queued before the event");
    CHECK(poisoned(pinnedD, 4), "(b) cuEventSynchronize leaves the copy queued after the event pending");
    CHECK(fakecudaPendingWork() == 1, "(b) exactly the work after the event is still pending");
    CHECK(cuEventQuery(event) == 0, "(c) cuEventQuery is CUDA_SUCCESS once the event's marker has run");
    OK(cuStreamSynchronize(stream));
    CHECK(equal(pinnedD, two, 4), "(b) the copy after the event runs at cuStreamSynchronize");
    // Recording again moves the event to a new marker.
    OK(cuMemsetD32Async(b, 0, 4, stream));
    OK(cuEventRecord(event, stream));
    CHECK(cuEventQuery(event) == 600, "a re-recorded event is pending again");
    OK(cuEventSynchronize(event));
    CHECK(cuEventQuery(event) == 0 && ((float*)b)[3] == 0, "cuEventSynchronize on a re-recorded event runs the memset");

    // (d) HtoD from pageable memory takes the bytes at call time...
    float pageable[4] = {1, 2, 3, 4};
    OK(cuMemcpyHtoDAsync_v2(b, pageable, 16, stream));
    memcpy(pageable, two, 16);
    OK(cuStreamSynchronize(stream));
    CHECK(equal((float*)b, one, 4), "(d) HtoD from pageable memory uses the bytes at call time");
    // ...and from page-locked memory the bytes at execution time.
    memcpy(pinnedA, one, 16);
    OK(cuMemcpyHtoDAsync_v2(b, pinnedA, 16, stream));
    memcpy(pinnedA, two, 16);
    OK(cuStreamSynchronize(stream));
    CHECK(equal((float*)b, two, 4), "(d) HtoD from page-locked memory uses the bytes at execution time");

    // (e) Kernel parameter values are copied at launch time.
    void *module, *multiply;
    OK(cuModuleLoadData(&module, "// selftest module"));
    // nn_multiply(const float* a, const float* b, float* target, long long n): target = a ⊙ b.
    OK(cuModuleGetFunction(&multiply, module, "nn_multiply"));
    OK(cuMemcpyHtoDAsync_v2(a, one, 16, stream));
    uint64_t x = a;
    long long n = 4;
    void* params[] = {&x, &x, &x, &n};
    OK(cuLaunchKernel(multiply, 1, 1, 1, 32, 1, 1, 0, stream, params, nullptr));
    x = b; n = 1;  // a caller may reuse its parameter storage at once
    CHECK(fakecudaPendingWork() == 2, "(e) the kernel launch is queued, not run");
    OK(cuStreamSynchronize(stream));
    const float squares[4] = {1, 4, 9, 16}, fourth[4] = {1, 16, 81, 256};
    CHECK(equal((float*)a, squares, 4), "(e) the kernel ran with the parameter values at launch time");
    CHECK(equal((float*)b, two, 4), "(e) the kernel did not use the parameter values changed after the launch");

    // A DtoH copy into pageable memory returns only once it has completed, so
    // the work queued before it runs first.
    x = a; n = 4;
    OK(cuLaunchKernel(multiply, 1, 1, 1, 64, 1, 1, 0, stream, params, nullptr));
    float out[4] = {};
    OK(cuMemcpyDtoHAsync_v2(out, a, 16, stream));
    CHECK(fakecudaPendingWork() == 0 && equal(out, fourth, 4), "DtoH into pageable memory waits for the queued kernel");

    // DtoD is queued; cuMemFree synchronizes implicitly.
    uint64_t spare;
    OK(cuMemAlloc_v2(&spare, 4));
    OK(cuMemcpyDtoDAsync_v2(b, a, 16, stream));
    OK(cuMemcpyDtoHAsync_v2(pinnedB, b, 16, stream));
    CHECK(equal((float*)b, two, 4), "cuMemcpyDtoDAsync is queued");
    OK(cuMemFree_v2(spare));
    CHECK(fakecudaPendingWork() == 0 && equal(pinnedB, fourth, 4), "cuMemFree runs the queued work first");
    OK(cuMemcpyHtoDAsync_v2(a, one, 16, stream));
    OK(cuStreamSynchronize(stream));

    // cuBLAS Sgemm is queued on the handle's stream; alpha and beta are read at call time.
    void* blas;
    OK(cublasCreate_v2(&blas));
    OK(cublasSetStream_v2(blas, stream));
    OK(cuMemcpyHtoDAsync_v2(b, two, 16, stream));
    float alpha = 1, beta = 0;
    // Column-major 2×2: a holds A = [1 3; 2 4], and C = A·A = [7 15; 10 22] goes to b.
    OK(cublasSgemm_v2(blas, 0, 0, 2, 2, 2, &alpha, (const float*)a, 2, (const float*)a, 2, &beta, (float*)b, 2));
    alpha = 100; beta = 1;  // too late: the queued product must not see these
    CHECK(fakecudaPendingWork() == 2 && equal((float*)b, fourth, 4), "cublasSgemm_v2 is queued, not run");
    OK(cuStreamSynchronize(stream));
    const float product[4] = {7, 10, 15, 22};
    CHECK(equal((float*)b, product, 4), "cublasSgemm_v2 ran with alpha and beta as they were at call time");
    OK(cuMemsetD32Async(b, 0, 4, stream));
    OK(cublasDestroy_v2(blas));
    CHECK(fakecudaPendingWork() == 0, "cublasDestroy_v2 synchronizes");

    // Errors: bad flags, handles that are not the emulator's, overruns.
    void* bad;
    CHECK(cuEventCreate(&bad, 1) == 1, "cuEventCreate with unsupported flags is CUDA_ERROR_INVALID_VALUE");
    int notAHandle;
    CHECK(cuEventRecord(&notAHandle, stream) == 400, "cuEventRecord of an unknown event is CUDA_ERROR_INVALID_HANDLE");
    CHECK(cuEventRecord(event, &notAHandle) == 400, "cuEventRecord on an unknown stream is CUDA_ERROR_INVALID_HANDLE");
    CHECK(cuEventSynchronize(&notAHandle) == 400 && cuEventQuery(&notAHandle) == 400 && cuEventDestroy_v2(&notAHandle) == 400,
          "event calls on an unknown event are CUDA_ERROR_INVALID_HANDLE");
    CHECK(cuStreamSynchronize(nullptr) == 400 && cuMemsetD32Async(a, 0, 1, &notAHandle) == 400,
          "calls on a stream that is not the emulator's are CUDA_ERROR_INVALID_HANDLE");
    CHECK(aborts([&] { cuMemcpyHtoDAsync_v2(a + 8, one, 16, stream); }, "overruns an allocation of 16"),
          "an HtoD copy past the end of an allocation aborts");
    CHECK(aborts([&] { cuMemcpyDtoHAsync_v2(pinnedA + 2, a, 16, stream); }, "overruns a page-locked host allocation"),
          "a DtoH copy past the end of a page-locked allocation aborts");
    CHECK(aborts([&] { cuMemFreeHost(out); }, "cuMemFreeHost of unknown pointer"),
          "cuMemFreeHost of a pointer not from cuMemAllocHost_v2 aborts");
    CHECK(aborts([&] { cuLaunchKernel(multiply, 1, 1, 1, 48, 1, 1, 0, stream, params, nullptr); }, "not a multiple of 32"),
          "a launch with a partial warp aborts");

    OK(cuEventDestroy_v2(event));
    OK(cuEventDestroy_v2(never));
    for (float* p : {pinnedA, pinnedB, pinnedC, pinnedD}) OK(cuMemFreeHost(p));
    OK(cuMemFree_v2(a));
    OK(cuMemFree_v2(b));
    printf("fakecuda selftest: %d checks passed\n", passed);
    return 0;
}
