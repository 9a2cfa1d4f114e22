// A CPU stand-in for libcuda.so.1: runs nntrain's CUDA C kernels as C++ with
// every GPU thread a fiber, __syncthreads and warp shuffles as real barriers
// (a divergent barrier deadlocks and aborts), and checked memory copies.
// Only for testing the Swift backend without a GPU.
//
// Streams are modelled as on a GPU: kernel launches, memsets, copies and
// cuBLAS calls are queued and run later, in order, when the host waits
// (cuStreamSynchronize, cuEventSynchronize, cuCtxSynchronize, cuMemFree, a
// copy into pageable host memory). So a host read of memory the stream has
// not produced yet sees stale data here exactly as on real hardware, and a
// missing synchronization in the backend shows up as wrong values.
// One context, one stream (which every call must name), one host thread at a
// time (a mutex makes concurrent calls safe, not meaningful).
#include <ucontext.h>
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

struct Dim { unsigned x = 0, y = 1, z = 1; };
static Dim threadIdx, blockIdx, blockDim, gridDim;
// What the emulated GPU is executing right now ("kernel nn_scale",
// "cuMemcpyDtoDAsync"), or null while no queued work runs; named in errors.
static const char* executing = nullptr;

[[noreturn]] static void die(const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "fakecuda: ");
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    if (executing) fprintf(stderr, " (while running queued %s)", executing);
    fprintf(stderr, "\n");
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
unsigned atomicMax(unsigned* p, unsigned v) { unsigned old = *p; if (v > old) *p = v; return old; }
float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }

static void fiberEntry() { body(); fibers[current].done = true; progress++; }

// The launch configurations the emulator can run; checked when the kernel is
// launched (so the error names the call) and again when it runs.
static const char* badConfiguration(unsigned grid, unsigned threads) {
    if (grid == 0 || threads == 0 || threads > 1024) return "bad launch configuration";
    if (threads % 32 != 0) return "block size is not a multiple of 32";  // warp shuffles need whole warps
    return nullptr;
}

static void runGrid(unsigned grid, unsigned threads) {
    if (const char* bad = badConfiguration(grid, threads)) die("%s: %u blocks of %u threads", bad, grid, threads);
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
// The run script puts NNCUDA's kernels directory and CKernels' public
// headers (nn_rules.h) on the include path.
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#include "nntrain.cu"

// A registry entry turns a launch's kernelParams into the work to queue. The
// argument VALUES are copied into the work at launch time: cuLaunchKernel
// reads kernelParams before it returns, so the caller may reuse or free them
// at once, and the kernel sees the values as they were at the launch.
using Launch = std::function<void()>;
using Prepare = std::function<Launch(void** params, unsigned grid, unsigned threads)>;

template <typename... A, size_t... I>
static std::tuple<A...> unpack(void** p, std::index_sequence<I...>) { return std::tuple<A...>(*static_cast<A*>(p[I])...); }
template <typename... A>
static Prepare launcher(void (*f)(A...)) {
    return [f](void** params, unsigned grid, unsigned threads) -> Launch {
        if (sizeof...(A) > 0 && !params) return nullptr;
        std::tuple<A...> arguments = unpack<A...>(params, std::index_sequence_for<A...>{});
        return [f, arguments, grid, threads] {
            body = [&] { std::apply(f, arguments); };
            runGrid(grid, threads);
        };
    };
}
static std::map<std::string, Prepare> registry = {
#include "registry.inc"  // {"name", launcher(name)}, for every kernel; written by the run script
};

// ---- the stream: a FIFO of work the host queued and the "GPU" has not run ----
// Work is numbered in queue order and runs strictly in that order, only when
// the host waits for it; everything numbered up to lastRun has run.
struct Work { uint64_t number; std::string name; std::function<void()> run; };
static std::deque<Work> pending;
static uint64_t lastQueued = 0, lastRun = 0;
static std::mutex apiMutex;
static std::unique_lock<std::mutex> locked() { return std::unique_lock<std::mutex>(apiMutex); }

static uint64_t enqueue(std::string name, std::function<void()> run) {
    pending.push_back(Work{++lastQueued, std::move(name), std::move(run)});
    return lastQueued;
}
// Runs queued work, oldest first, up to and including work item `number`;
// anything queued after it stays pending.
static void runThrough(uint64_t number) {
    while (!pending.empty() && pending.front().number <= number) {
        Work work = std::move(pending.front());
        pending.pop_front();
        executing = work.name.c_str();
        work.run();
        executing = nullptr;
        lastRun = work.number;
    }
}
static void runAll() { runThrough(lastQueued); }

// An event is complete once its latest marker has run; one never recorded
// (marker 0) is complete.
struct Event { uint64_t marker = 0; };
static std::set<Event*> events;
static bool complete(const Event* event) { return event->marker <= lastRun; }

// ---- memory ----------------------------------------------------------------
// Device allocations (cuMemAlloc_v2) and page-locked host allocations
// (cuMemAllocHost_v2): base address → bytes. Both are malloc'd host memory.
static std::map<uintptr_t, size_t> allocations, pinnedAllocations;

// Fresh memory is filled with a NaN pattern, so memory the backend forgets to
// initialize shows up in the results.
static void* poisoned(size_t bytes) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p) die("out of host memory allocating %zu bytes", bytes);
    uint32_t poison = 0x7fc00bad;
    for (size_t i = 0; i + 4 <= bytes; i += 4) memcpy((char*)p + i, &poison, 4);
    return p;
}

// The allocation in `map` containing `address`, or map.end().
static std::map<uintptr_t, size_t>::const_iterator containing(const std::map<uintptr_t, size_t>& map, uintptr_t address) {
    auto it = map.upper_bound(address);
    if (it == map.begin()) return map.end();
    --it;
    return address < it->first + std::max<size_t>(it->second, 1) ? it : map.end();
}

// Every device range a copy or memset touches must lie inside one live
// device allocation: checked when the call is made and again when it runs.
static void checkDevice(uint64_t address, size_t bytes, const char* call) {
    auto it = containing(allocations, (uintptr_t)address);
    if (it == allocations.end()) die("%s outside device memory", call);
    if (address + bytes > it->first + it->second)
        die("%s of %zu bytes at +%zu overruns an allocation of %zu", call, bytes, (size_t)(address - it->first), it->second);
}

// Whether [host, host + bytes) is page-locked memory from cuMemAllocHost_v2
// (else it is ordinary pageable memory). A range that starts in a page-locked
// allocation but runs past its end is an error.
static bool isPinned(const void* host, size_t bytes, const char* call) {
    auto it = containing(pinnedAllocations, (uintptr_t)host);
    if (it == pinnedAllocations.end()) return false;
    if ((uintptr_t)host + bytes > it->first + it->second)
        die("%s of %zu bytes at +%zu overruns a page-locked host allocation of %zu", call, bytes,
            (size_t)((uintptr_t)host - it->first), it->second);
    return true;
}
// When queued work touching page-locked memory runs, that memory must still be allocated.
static void checkPinned(const void* host, size_t bytes, const char* call) {
    if (!isPinned(host, bytes, call)) die("%s: page-locked host memory at %p was freed before the copy ran", call, host);
}

extern "C" {
typedef int CUresult;
enum : CUresult { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_INVALID_HANDLE = 400,
                  CUDA_ERROR_NOT_READY = 600 };

// ---- device, context, stream -------------------------------------------------
long fakecudaLiveAllocations() { auto lock = locked(); return (long)allocations.size(); }
// Queued work items that have not run yet (for the self-test).
long fakecudaPendingWork() { auto lock = locked(); return (long)pending.size(); }
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
// cuCtxSynchronize: blocks until the context has finished all queued work.
CUresult cuCtxSynchronize() { auto lock = locked(); runAll(); return 0; }

// The one stream. Every queuing call must name it: NULL (the legacy default
// stream) would be correct on a GPU but slower, so it is rejected here to
// make a forgotten stream argument visible.
static int streamToken;
static bool ourStream(void* stream) { return stream == &streamToken; }
CUresult cuStreamCreate(void** stream, unsigned) { *stream = &streamToken; return 0; }
// cuStreamDestroy returns at once; work already queued still completes.
CUresult cuStreamDestroy_v2(void* stream) { return ourStream(stream) ? 0 : CUDA_ERROR_INVALID_HANDLE; }
// cuStreamSynchronize: blocks until all work queued on the stream has run.
CUresult cuStreamSynchronize(void* stream) {
    auto lock = locked();
    if (!ourStream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    runAll();
    return 0;
}

// ---- events ------------------------------------------------------------------
// flags: CU_EVENT_DEFAULT (0) or CU_EVENT_DISABLE_TIMING (2); this emulator takes no others.
CUresult cuEventCreate(void** event, unsigned flags) {
    if (!event || (flags != 0 && flags != 2)) return CUDA_ERROR_INVALID_VALUE;
    auto lock = locked();
    Event* created = new Event;
    events.insert(created);
    *event = created;
    return 0;
}
// cuEventRecord queues a marker: the event is "not complete" until the
// marker runs, i.e. until all work queued before it has run. Recording again
// moves the event to the new marker.
CUresult cuEventRecord(void* event, void* stream) {
    auto lock = locked();
    auto it = events.find((Event*)event);
    if (it == events.end() || !ourStream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    (*it)->marker = enqueue("event marker", [] {});
    return 0;
}
// cuEventSynchronize waits for the event's latest marker, and no further:
// work queued after the marker stays pending.
CUresult cuEventSynchronize(void* event) {
    auto lock = locked();
    auto it = events.find((Event*)event);
    if (it == events.end()) return CUDA_ERROR_INVALID_HANDLE;
    runThrough((*it)->marker);
    return 0;
}
// cuEventQuery only looks: it never makes queued work run.
CUresult cuEventQuery(void* event) {
    auto lock = locked();
    auto it = events.find((Event*)event);
    if (it == events.end()) return CUDA_ERROR_INVALID_HANDLE;
    return complete(*it) ? 0 : CUDA_ERROR_NOT_READY;
}
// Destroying a recorded, incomplete event returns at once (the marker needs
// nothing from the event, so it can stay queued).
CUresult cuEventDestroy_v2(void* event) {
    auto lock = locked();
    auto it = events.find((Event*)event);
    if (it == events.end()) return CUDA_ERROR_INVALID_HANDLE;
    delete *it;
    events.erase(it);
    return 0;
}

// ---- memory ------------------------------------------------------------------
CUresult cuMemAlloc_v2(uint64_t* address, size_t bytes) {
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;  // as documented for cuMemAlloc
    auto lock = locked();
    void* p = poisoned(bytes);
    allocations[(uintptr_t)p] = bytes;
    *address = (uintptr_t)p;
    return 0;
}
// cuMemFree synchronizes implicitly: queued work that may still use the
// memory runs first.
CUresult cuMemFree_v2(uint64_t address) {
    auto lock = locked();
    runAll();
    if (!allocations.erase((uintptr_t)address)) die("cuMemFree of unknown %llx", (unsigned long long)address);
    free((void*)address);
    return 0;
}
// Page-locked host memory: copies from and to it are truly asynchronous (see below).
CUresult cuMemAllocHost_v2(void** pp, size_t bytes) {
    if (!pp) return CUDA_ERROR_INVALID_VALUE;
    auto lock = locked();
    void* p = poisoned(bytes);
    pinnedAllocations[(uintptr_t)p] = bytes;
    *pp = p;
    return 0;
}
// Freeing page-locked memory waits for the device first (as cudaFreeHost
// does), so queued copies from or to it complete.
CUresult cuMemFreeHost(void* p) {
    auto lock = locked();
    if (!pinnedAllocations.count((uintptr_t)p)) die("cuMemFreeHost of unknown pointer %p (not from cuMemAllocHost_v2)", p);
    runAll();
    pinnedAllocations.erase((uintptr_t)p);
    free(p);
    return 0;
}

CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void* h, size_t bytes, void* s) {
    auto lock = locked();
    if (!ourStream(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (!h && bytes) return CUDA_ERROR_INVALID_VALUE;
    checkDevice(d, bytes, "cuMemcpyHtoDAsync");
    if (isPinned(h, bytes, "cuMemcpyHtoDAsync")) {
        // Page-locked source: the copy engine reads the host bytes when the
        // copy runs, so the host must not overwrite them until it has.
        enqueue("cuMemcpyHtoDAsync from page-locked memory", [d, h, bytes] {
            checkPinned(h, bytes, "cuMemcpyHtoDAsync");
            checkDevice(d, bytes, "cuMemcpyHtoDAsync");
            memcpy((void*)d, h, bytes);
        });
    } else {
        // Pageable source: the driver stages the bytes before returning (CUDA
        // driver API, "API synchronization behavior"), so the caller may reuse
        // its buffer at once; the device memory changes only when the copy runs.
        std::vector<char> staged((const char*)h, (const char*)h + bytes);
        enqueue("cuMemcpyHtoDAsync from pageable memory", [d, staged = std::move(staged)] {
            checkDevice(d, staged.size(), "cuMemcpyHtoDAsync");
            if (!staged.empty()) memcpy((void*)d, staged.data(), staged.size());
        });
    }
    return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void* h, uint64_t d, size_t bytes, void* s) {
    auto lock = locked();
    if (!ourStream(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (!h && bytes) return CUDA_ERROR_INVALID_VALUE;
    checkDevice(d, bytes, "cuMemcpyDtoHAsync");
    if (isPinned(h, bytes, "cuMemcpyDtoHAsync")) {
        // Page-locked target: the copy is queued; the host sees the values
        // only after it has synchronized with the stream (or an event after it).
        enqueue("cuMemcpyDtoHAsync into page-locked memory", [h, d, bytes] {
            checkPinned(h, bytes, "cuMemcpyDtoHAsync");
            checkDevice(d, bytes, "cuMemcpyDtoHAsync");
            memcpy(h, (const void*)d, bytes);
        });
    } else {
        // Pageable target: "for transfers from device memory to pageable host
        // memory, the function will return only once the copy has completed"
        // (API synchronization behavior), so the work queued before it runs first.
        runAll();
        checkDevice(d, bytes, "cuMemcpyDtoHAsync");
        if (bytes) memcpy(h, (const void*)d, bytes);
    }
    return 0;
}
CUresult cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t src, size_t bytes, void* s) {
    auto lock = locked();
    if (!ourStream(s)) return CUDA_ERROR_INVALID_HANDLE;
    checkDevice(d, bytes, "cuMemcpyDtoDAsync");
    checkDevice(src, bytes, "cuMemcpyDtoDAsync");
    // Device to device: queued, no host-side synchronization.
    enqueue("cuMemcpyDtoDAsync", [d, src, bytes] {
        checkDevice(d, bytes, "cuMemcpyDtoDAsync");
        checkDevice(src, bytes, "cuMemcpyDtoDAsync");
        memmove((void*)d, (const void*)src, bytes);
    });
    return 0;
}
// A memset of device memory is queued; the value is taken at call time.
CUresult cuMemsetD32Async(uint64_t d, unsigned value, size_t count, void* s) {
    auto lock = locked();
    if (!ourStream(s)) return CUDA_ERROR_INVALID_HANDLE;
    checkDevice(d, count * 4, "cuMemsetD32Async");
    enqueue("cuMemsetD32Async", [d, value, count] {
        checkDevice(d, count * 4, "cuMemsetD32Async");
        for (size_t i = 0; i < count; i++) memcpy((char*)d + 4 * i, &value, 4);
    });
    return 0;
}

// ---- modules and launches ----------------------------------------------------
static int moduleToken;
// Takes a CUBIN (ELF) or PTX (text starting with "//") image; the kernels
// themselves are the C++ compiled in above.
CUresult cuModuleLoadData(void** module, const void* image) {
    if (memcmp(image, "\x7f" "ELF", 4) != 0 && memcmp(image, "//", 2) != 0) return 200;
    *module = &moduleToken; return 0;
}
CUresult cuModuleUnload(void*) { return 0; }
// A function handle is the kernel's registry entry.
using Entry = std::pair<const std::string, Prepare>;
static std::set<const void*> functionHandles;
CUresult cuModuleGetFunction(void** function, void*, const char* name) {
    auto lock = locked();
    auto it = registry.find(name);
    if (it == registry.end()) return 500;
    *function = (void*)&*it;
    functionHandles.insert(*function);
    return 0;
}
// cuLaunchKernel queues the kernel with its argument values copied now; it
// runs when the host next waits for the stream. 1-D grids, no dynamic shared
// memory and no `extra` only.
CUresult cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void* stream, void** params, void** extra) {
    auto lock = locked();
    if (!functionHandles.count(function) || !ourStream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    if (gy != 1 || gz != 1 || by != 1 || bz != 1 || shared != 0 || extra) return CUDA_ERROR_INVALID_VALUE;
    auto entry = (Entry*)function;
    if (const char* bad = badConfiguration(gx, bx))
        die("%s: kernel %s launched with %u blocks of %u threads", bad, entry->first.c_str(), gx, bx);
    Launch run = entry->second(params, gx, bx);
    if (!run) return CUDA_ERROR_INVALID_VALUE;
    enqueue("kernel " + entry->first, std::move(run));
    return 0;
}

// For the fake cuBLAS (linked against this library): queues `run(state)` on
// `stream`. run is called exactly once, when the work executes, and owns state.
CUresult fakecudaEnqueue(void* stream, const char* name, void (*run)(void*), void* state) {
    auto lock = locked();
    if (!ourStream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    enqueue(name, [run, state] { run(state); });
    return 0;
}

// The real names of the codes this emulator returns.
CUresult cuGetErrorName(CUresult result, const char** name) {
    switch (result) {
    case 0: *name = "CUDA_SUCCESS"; break;
    case 1: *name = "CUDA_ERROR_INVALID_VALUE"; break;
    case 101: *name = "CUDA_ERROR_INVALID_DEVICE"; break;
    case 200: *name = "CUDA_ERROR_INVALID_IMAGE"; break;
    case 201: *name = "CUDA_ERROR_INVALID_CONTEXT"; break;
    case 400: *name = "CUDA_ERROR_INVALID_HANDLE"; break;
    case 500: *name = "CUDA_ERROR_NOT_FOUND"; break;
    case 600: *name = "CUDA_ERROR_NOT_READY"; break;
    case 801: *name = "CUDA_ERROR_NOT_SUPPORTED"; break;
    default: *name = nullptr; return CUDA_ERROR_INVALID_VALUE;
    }
    return 0;
}
}
extern "C" {
// NVRTC's compile cache asks the driver for private tables; the emulator has none.
CUresult cuGetExportTable(const void** table, const void*) { *table = nullptr; return 801; }
CUresult cuGetProcAddress(const char*, void** p, int, unsigned long long) { *p = nullptr; return 801; }
CUresult cuGetProcAddress_v2(const char*, void** p, int, unsigned long long, void*) { *p = nullptr; return 801; }
}
