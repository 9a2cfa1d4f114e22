// A CPU stand-in for libcuda.so.1: runs nntrain's CUDA C kernels as C++ with
// every GPU thread a fiber, __syncthreads and warp shuffles as real barriers
// (a divergent barrier deadlocks and aborts), and checked memory copies.
// Only for testing the Swift backend without a GPU.
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

struct Dim { unsigned x = 0, y = 1, z = 1; };
static Dim threadIdx, blockIdx, blockDim, gridDim;
static std::string currentKernel;

[[noreturn]] static void die(const char* what) {
    fprintf(stderr, "fakecuda: %s (kernel %s)\n", what, currentKernel.c_str());
    abort();
}

// ---- fibers ----------------------------------------------------------------
struct Fiber { ucontext_t context; bool done = false; };
static std::vector<Fiber> fibers;
static std::vector<std::vector<char>> stacks;
static ucontext_t scheduler;
static int current = 0;
static std::function<void()> body;
static unsigned long progress = 0;
static unsigned blockArrived = 0, blockGeneration = 0;
static unsigned warpArrived[32], warpGeneration[32];
static float warpFloat[32][32];
static int warpInt[32][32];

static void yield() { swapcontext(&fibers[current].context, &scheduler); }

void __syncthreads() {
    unsigned generation = blockGeneration;
    if (++blockArrived == blockDim.x) { blockArrived = 0; blockGeneration++; progress++; return; }
    while (blockGeneration == generation) yield();
}
static void warpBarrier() {
    unsigned w = threadIdx.x >> 5, generation = warpGeneration[w];
    if (++warpArrived[w] == 32) { warpArrived[w] = 0; warpGeneration[w]++; progress++; return; }
    while (warpGeneration[w] == generation) yield();
}
template <typename T> static T shuffleDown(T (&buffer)[32][32], unsigned mask, T v, int offset) {
    if (mask != 0xffffffffu) die("partial shuffle mask");
    unsigned lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    buffer[w][lane] = v;
    warpBarrier();
    T r = lane + offset < 32 ? buffer[w][lane + offset] : v;
    warpBarrier();
    return r;
}
float __shfl_down_sync(unsigned mask, float v, int offset) { return shuffleDown(warpFloat, mask, v, offset); }
int __shfl_down_sync(unsigned mask, int v, int offset) { return shuffleDown(warpInt, mask, v, offset); }

float atomicAdd(float* p, float v) { float old = *p; *p = old + v; return old; }
unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { auto old = *p; *p = old + v; return old; }
unsigned atomicAdd(unsigned* p, unsigned v) { unsigned old = *p; *p = old + v; return old; }
unsigned atomicCAS(unsigned* p, unsigned compare, unsigned value) { unsigned old = *p; if (old == compare) *p = value; return old; }
float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }

static void fiberEntry() { body(); fibers[current].done = true; progress++; }

static void runGrid(unsigned grid, unsigned threads) {
    if (grid == 0 || threads == 0 || threads > 1024) die("bad launch configuration");
    if (threads % 32 != 0) die("block size is not a multiple of 32");
    gridDim.x = grid; blockDim.x = threads;
    fibers.assign(threads, Fiber());
    stacks.resize(threads);
    for (unsigned b = 0; b < grid; b++) {
        blockIdx.x = b;
        blockArrived = 0;
        memset(warpArrived, 0, sizeof warpArrived);
        for (unsigned t = 0; t < threads; t++) {
            stacks[t].resize(1 << 16);
            fibers[t].done = false;
            getcontext(&fibers[t].context);
            fibers[t].context.uc_stack.ss_sp = stacks[t].data();
            fibers[t].context.uc_stack.ss_size = stacks[t].size();
            fibers[t].context.uc_link = &scheduler;
            makecontext(&fibers[t].context, fiberEntry, 0);
        }
        for (;;) {
            bool running = false;
            unsigned long before = progress;
            for (unsigned t = 0; t < threads; t++) {
                if (fibers[t].done) continue;
                running = true;
                current = (int)t;
                threadIdx.x = t;
                swapcontext(&scheduler, &fibers[t].context);
            }
            if (!running) break;
            if (progress == before) die("deadlock: a barrier or shuffle not reached by every thread");
        }
    }
}

// ---- the kernels, compiled as C++ -----------------------------------------
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#include "kernels.inc"

template <typename... A, size_t... I>
static std::tuple<A...> unpack(void** p, std::index_sequence<I...>) { return std::tuple<A...>(*static_cast<A*>(p[I])...); }
template <typename... A>
static std::function<void(void**, unsigned, unsigned)> launcher(void (*f)(A...)) {
    return [f](void** p, unsigned grid, unsigned threads) {
        auto arguments = unpack<A...>(p, std::index_sequence_for<A...>{});
        body = [&] { std::apply(f, arguments); };
        runGrid(grid, threads);
    };
}
static std::map<std::string, std::function<void(void**, unsigned, unsigned)>> registry = {
#include "registry.inc"
};

// ---- memory: every copy must lie inside one live allocation ------------------
static std::map<uintptr_t, size_t> allocations;
static void checkRange(uint64_t address, size_t bytes, const char* call) {
    auto it = allocations.upper_bound((uintptr_t)address);
    if (it == allocations.begin()) { fprintf(stderr, "fakecuda: %s outside device memory\n", call); abort(); }
    --it;
    if (address < it->first || address + bytes > it->first + it->second) {
        fprintf(stderr, "fakecuda: %s of %zu bytes at +%zu overruns an allocation of %zu\n", call, bytes,
                (size_t)(address - it->first), it->second);
        abort();
    }
}

extern "C" {
typedef int CUresult;
long fakecudaLiveAllocations() { return (long)allocations.size(); }
CUresult cuInit(unsigned) { return 0; }
CUresult cuDriverGetVersion(int* v) { *v = 12080; return 0; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int ordinal) { *d = ordinal; return ordinal == 0 ? 0 : 101; }
CUresult cuDeviceGetName(char* name, int length, int) { snprintf(name, length, "fakecuda CPU emulator"); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attribute, int) { *v = attribute == 75 ? 9 : attribute == 76 ? 0 : 0; return 0; }
CUresult cuDeviceTotalMem_v2(size_t* bytes, int) { *bytes = (size_t)1 << 32; return 0; }
static int contextToken;
CUresult cuDevicePrimaryCtxRetain(void** context, int) { *context = &contextToken; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int) { return 0; }
CUresult cuCtxSetCurrent(void* context) { return context == &contextToken ? 0 : 201; }
static int streamToken;
CUresult cuStreamCreate(void** stream, unsigned) { *stream = &streamToken; return 0; }
CUresult cuStreamDestroy_v2(void*) { return 0; }
CUresult cuStreamSynchronize(void* stream) { return stream == &streamToken ? 0 : 400; }
CUresult cuMemAlloc_v2(uint64_t* address, size_t bytes) {
    void* p = malloc(bytes);
    uint32_t poison = 0x7fc00bad;  // NaN: memory the backend forgets to zero shows up
    for (size_t i = 0; i + 4 <= bytes; i += 4) memcpy((char*)p + i, &poison, 4);
    allocations[(uintptr_t)p] = bytes;
    *address = (uintptr_t)p;
    return 0;
}
CUresult cuMemFree_v2(uint64_t address) {
    if (!allocations.erase((uintptr_t)address)) { fprintf(stderr, "fakecuda: cuMemFree of unknown %llx\n", (unsigned long long)address); abort(); }
    free((void*)address);
    return 0;
}
CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void* h, size_t bytes, void* s) {
    checkRange(d, bytes, "cuMemcpyHtoDAsync"); memcpy((void*)d, h, bytes); return s == &streamToken ? 0 : 400;
}
CUresult cuMemcpyDtoHAsync_v2(void* h, uint64_t d, size_t bytes, void* s) {
    checkRange(d, bytes, "cuMemcpyDtoHAsync"); memcpy(h, (void*)d, bytes); return s == &streamToken ? 0 : 400;
}
CUresult cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t src, size_t bytes, void* s) {
    checkRange(d, bytes, "cuMemcpyDtoDAsync"); checkRange(src, bytes, "cuMemcpyDtoDAsync");
    memmove((void*)d, (void*)src, bytes); return s == &streamToken ? 0 : 400;
}
CUresult cuMemsetD32Async(uint64_t d, unsigned value, size_t count, void* s) {
    checkRange(d, count * 4, "cuMemsetD32Async");
    for (size_t i = 0; i < count; i++) memcpy((char*)d + 4 * i, &value, 4);
    return s == &streamToken ? 0 : 400;
}
static int moduleToken;
CUresult cuModuleLoadData(void** module, const void* image) {
    if (memcmp(image, "\x7f" "ELF", 4) != 0 && memcmp(image, "//", 2) != 0) return 200;
    *module = &moduleToken; return 0;
}
CUresult cuModuleUnload(void*) { return 0; }
CUresult cuModuleGetFunction(void** function, void*, const char* name) {
    auto it = registry.find(name);
    if (it == registry.end()) return 500;
    *function = (void*)&*it;
    return 0;
}
CUresult cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void* stream, void** params, void** extra) {
    if (gy != 1 || gz != 1 || by != 1 || bz != 1 || shared != 0 || extra || stream != &streamToken) return 1;
    auto entry = (std::pair<const std::string, std::function<void(void**, unsigned, unsigned)>>*)function;
    currentKernel = entry->first;
    entry->second(params, gx, bx);
    return 0;
}
CUresult cuGetErrorName(CUresult, const char** name) { *name = "CUDA_ERROR_FAKE"; return 0; }
}
extern "C" {
// NVRTC's compile cache asks the driver for private tables; the emulator has none.
CUresult cuGetExportTable(const void** table, const void*) { *table = nullptr; return 801; }
CUresult cuGetProcAddress(const char*, void** p, int, unsigned long long) { *p = nullptr; return 801; }
CUresult cuGetProcAddress_v2(const char*, void** p, int, unsigned long long, void*) { *p = nullptr; return 801; }
}
