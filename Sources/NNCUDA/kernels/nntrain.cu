// The CUDA backend's kernels, compiled at start-up by NVRTC (the build embeds
// this file and nn_rules.h into the binary; see Kernels.swift) and, for the
// tests, as C++ by the CPU emulator of the driver (Tests/CUDAEmulator).
//
// Each kernel mirrors one loop of CPUAccelerator and keeps its arithmetic in
// the same order (and NVRTC is asked for --fmad=false, so no multiply-add is
// fused behind our back): elementwise ops and optimizer updates then agree
// with the CPU bit for bit, and reductions differ only by summation order.
// The per-element optimizer and activation arithmetic is nn_rules.h's, the
// same functions the CPU's C loops call.
//
// n = element count, k = columns of a row (classes), x/y = input/output,
// a = activation output, g = incoming gradient, d = outgoing gradient,
// z = logits, t = targets, p = probabilities, m/v = optimizer moments,
// w = weights, i64/u64 = 64-bit integers.
#include "nn_rules.h"

typedef long long i64;
typedef unsigned long long u64;

#define GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
#define NEG_INF __int_as_float(0xff800000)
#define NO_INDEX 0x7fffffff

// ---- helpers -------------------------------------------------------------

// Swift's max(v, 0) is `0 >= v ? 0 : v`; keep it, NaN and -0 included.
__device__ __forceinline__ float swift_max0(float v) { return 0.0f >= v ? 0.0f : v; }

// SplitMix64's finalizer and the top-24-bit unit float, exactly as Random.swift.
__device__ __forceinline__ u64 mix64(u64 value) {
    u64 z = value + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
__device__ __forceinline__ float unit_float(u64 bits) {
    return (float)(bits >> 40) * (1.0f / 16777216.0f);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum / max, returned to every thread. scratch: 32 shared floats.
// Every thread of the block must call; blockDim.x is a multiple of 32.
__device__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = warp_sum(lane < warps ? scratch[lane] : 0.0f);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    v = scratch[0];
    __syncthreads();
    return v;
}
__device__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = warp_max(lane < warps ? scratch[lane] : NEG_INF);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    v = scratch[0];
    __syncthreads();
    return v;
}

// (value, index) pair order for argmax: larger value, then smaller index,
// so the block finds the first maximum as the CPU's sequential scan does.
__device__ __forceinline__ void take_better(float& v, int& i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
}
__device__ __forceinline__ void warp_argmax(float& v, int& i) {
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_down_sync(0xffffffffu, v, o);
        int oi = __shfl_down_sync(0xffffffffu, i, o);
        take_better(v, i, ov, oi);
    }
}
// Index of the first maximum of row[0..<k]; 0 when no value beats -inf (as the CPU).
__device__ int block_argmax(const float* row, int k, float* fscratch, int* iscratch) {
    float v = NEG_INF; int i = NO_INDEX;
    for (int j = threadIdx.x; j < k; j += blockDim.x) if (row[j] > v) { v = row[j]; i = j; }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    warp_argmax(v, i);
    if (lane == 0) { fscratch[warp] = v; iscratch[warp] = i; }
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? fscratch[lane] : NEG_INF;
        i = lane < warps ? iscratch[lane] : NO_INDEX;
        warp_argmax(v, i);
        if (lane == 0) iscratch[0] = i;
    }
    __syncthreads();
    i = iscratch[0];
    __syncthreads();
    return i == NO_INDEX ? 0 : i;
}

// ---- linear algebra and elementwise ----------------------------------------

// x: (B x k) += bias (1 x k) on every row.
extern "C" __global__ void nn_add_bias(float* x, const float* bias, i64 n, int k) {
    GRID_STRIDE(i, n) x[i] += bias[i % k];
}

// target (1 x k) <- beta * target + column sums of x (rows x k), one thread
// per column adding rows in order, as the CPU does.
extern "C" __global__ void nn_sum_rows(const float* x, float* target, int rows, int k, float beta) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k) return;
    float s = beta == 0.0f ? 0.0f : (beta == 1.0f ? target[j] : target[j] * beta);
    for (int r = 0; r < rows; r++) s += x[(i64)r * k + j];
    target[j] = s;
}

extern "C" __global__ void nn_multiply(const float* a, const float* b, float* target, i64 n) {
    GRID_STRIDE(i, n) target[i] = a[i] * b[i];
}

// ---- activations (kind = nn_activation_kind) ----------------------------------

extern "C" __global__ void nn_activate(const float* x, float* y, i64 n, int kind, float slope) {
    GRID_STRIDE(i, n) y[i] = nn_activate_element(kind, x[i], slope);
}

extern "C" __global__ void nn_activation_backward(const float* a, const float* g, float* d, i64 n,
                                                  int kind, float slope) {
    GRID_STRIDE(i, n) d[i] = nn_activation_backward_element(kind, a[i], g[i], slope);
}

// Row-wise softmax, one block per row of k values (in place allowed).
extern "C" __global__ void nn_softmax_rows(const float* x, float* y, int k) {
    __shared__ float scratch[32];
    const float* xr = x + (i64)blockIdx.x * k;
    float* yr = y + (i64)blockIdx.x * k;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < k; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < k; j += blockDim.x) { float e = expf(xr[j] - m); yr[j] = e; s += e; }
    float inv = 1.0f / block_sum(s, scratch);
    for (int j = threadIdx.x; j < k; j += blockDim.x) yr[j] *= inv;
}

// d_i = a_i (g_i - sum_j a_j g_j) per row, one block per row (in place over g allowed).
extern "C" __global__ void nn_softmax_backward(const float* a, const float* g, float* d, int k) {
    __shared__ float scratch[32];
    i64 base = (i64)blockIdx.x * k;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < k; j += blockDim.x) dot += a[base + j] * g[base + j];
    dot = block_sum(dot, scratch);
    for (int j = threadIdx.x; j < k; j += blockDim.x) d[base + j] = a[base + j] * (g[base + j] - dot);
}

// ---- losses: statistics = [lossSum, correct, squaredErrorSum, absoluteErrorSum] ----

// Softmax + cross-entropy by log-sum-exp, one block per row of k logits.
// t: class index per row (sparse) or a target row of k values.
extern "C" __global__ void nn_softmax_xent(const float* z, const float* t, float* p, float* grad,
                                           int k, int sparse, float scale, float* stats) {
    __shared__ float scratch[32];
    __shared__ int iscratch[32];
    i64 base = (i64)blockIdx.x * k;
    const float* zr = z + base;
    float* pr = p + base;
    int best = block_argmax(zr, k, scratch, iscratch);
    float m = zr[best];
    float s = 0.0f;
    for (int j = threadIdx.x; j < k; j += blockDim.x) { float e = expf(zr[j] - m); pr[j] = e; s += e; }
    s = block_sum(s, scratch);
    float logS = logf(s), inv = 1.0f / s;
    for (int j = threadIdx.x; j < k; j += blockDim.x) pr[j] *= inv;
    if (sparse) {
        int label = (int)t[blockIdx.x];
        bool valid = label >= 0 && label < k;  // labels are validated on load; never read outside the row
        if (threadIdx.x == 0 && valid) {
            atomicAdd(stats, logS + m - zr[label]);
            if (label == best) atomicAdd(stats + 1, 1.0f);
        }
        if (grad) for (int j = threadIdx.x; j < k; j += blockDim.x) {
            float v = scale * pr[j];
            if (j == label) v -= scale;
            grad[base + j] = v;
        }
    } else {
        const float* tr = t + base;
        float loss = 0.0f, mass = 0.0f;
        for (int j = threadIdx.x; j < k; j += blockDim.x) { loss += tr[j] * (logS + m - zr[j]); mass += tr[j]; }
        loss = block_sum(loss, scratch);
        mass = block_sum(mass, scratch);
        int label = block_argmax(tr, k, scratch, iscratch);
        if (threadIdx.x == 0) {
            atomicAdd(stats, loss);
            if (label == best) atomicAdd(stats + 1, 1.0f);
        }
        if (grad) for (int j = threadIdx.x; j < k; j += blockDim.x) grad[base + j] = scale * (pr[j] * mass - tr[j]);
    }
}

// Sigmoid + binary cross-entropy over n values of rows that are `outputs` wide.
extern "C" __global__ void nn_sigmoid_bce(const float* z, const float* t, float* p, float* grad, i64 n,
                                          float perOutput, float outputs, float* stats) {
    __shared__ float scratch[32];
    float loss = 0.0f, correct = 0.0f;
    GRID_STRIDE(i, n) {
        float zi = z[i], ti = t[i];
        loss += swift_max0(zi) - zi * ti + log1pf(expf(-fabsf(zi)));
        float pi = nn_sigmoid(zi);
        p[i] = pi;
        if ((pi >= 0.5f) == (ti >= 0.5f)) correct += 1.0f;
        if (grad) grad[i] = perOutput * (pi - ti);
    }
    loss = block_sum(loss, scratch);
    correct = block_sum(correct, scratch);
    if (threadIdx.x == 0) {
        atomicAdd(stats, loss / outputs);
        atomicAdd(stats + 1, correct);
    }
}

// Squared error over n values; threshold accuracy per value when asked.
extern "C" __global__ void nn_squared_error(const float* y, const float* t, float* grad, i64 n, float factor,
                                            int threshold, float cut, float outputs, float* stats) {
    __shared__ float scratch[32];
    float squared = 0.0f, absolute = 0.0f, correct = 0.0f;
    GRID_STRIDE(i, n) {
        float yi = y[i], ti = t[i], e = yi - ti;
        squared += e * e;
        absolute += fabsf(e);
        if (grad) grad[i] = factor * e;
        if (threshold && (yi >= cut) == (ti >= cut)) correct += 1.0f;
    }
    squared = block_sum(squared, scratch);
    absolute = block_sum(absolute, scratch);
    correct = block_sum(correct, scratch);
    if (threadIdx.x == 0) {
        atomicAdd(stats, squared / outputs);
        atomicAdd(stats + 1, correct);
        atomicAdd(stats + 2, squared);
        atomicAdd(stats + 3, absolute);
    }
}

// Rows (of k values) whose first maximum of y sits where t's first maximum does.
extern "C" __global__ void nn_argmax_matches(const float* y, const float* t, int rows, int k, float* stats) {
    __shared__ float scratch[32];
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    float match = 0.0f;
    if (r < rows) {
        const float* yr = y + (i64)r * k;
        const float* tr = t + (i64)r * k;
        int by = 0, bt = 0;
        for (int j = 0; j < k; j++) {
            if (yr[j] > yr[by]) by = j;
            if (tr[j] > tr[bt]) bt = j;
        }
        match = by == bt ? 1.0f : 0.0f;
    }
    match = block_sum(match, scratch);
    if (threadIdx.x == 0 && match > 0.0f) atomicAdd(stats + 1, match);
}

// ---- regularization ----------------------------------------------------------

// Inverted dropout; value i draws counterUniform(key, base + i) as Random.swift does.
extern "C" __global__ void nn_dropout(const float* x, float* mask, float* y, i64 n, float rate, float keep,
                                      u64 key, u64 base) {
    GRID_STRIDE(i, n) {
        u64 counter = base + (u64)i;
        float u = unit_float(mix64(key ^ (counter * 0xD1B54A32D192ED03ull)));
        float v = u >= rate ? keep : 0.0f;
        mask[i] = v;
        y[i] = x[i] * v;
    }
}

extern "C" __global__ void nn_add_penalty(const float* w, float* g, i64 n, float l1, float l2, float weight,
                                          float* stats) {
    __shared__ float scratch[32];
    float squares = 0.0f, absolutes = 0.0f, twoL2 = 2.0f * l2;
    GRID_STRIDE(i, n) {
        float v = w[i];
        squares += v * v;
        absolutes += fabsf(v);
        g[i] += twoL2 * v + (v > 0.0f ? l1 : (v < 0.0f ? -l1 : 0.0f));
    }
    squares = block_sum(squares, scratch);
    absolutes = block_sum(absolutes, scratch);
    if (threadIdx.x == 0) atomicAdd(stats, weight * (l2 * squares + l1 * absolutes));
}

// ---- optimizer rules (NNCore's UpdateStep), the loops of CKernels -------------
// keep = 1 - lr * weight decay (decoupled). record is the FiniteGuard record
// (null for none): an update changes nothing once it holds an earlier step
// or this step's gradients; otherwise the update counts the parameters whose
// new weight is NaN or +-inf and claims the record for them (with gradients
// that passed nn_check_finite the state cannot go wrong while the weight
// stays finite; see CKernels).
// With store = 0 it is a trial: it computes and checks, and writes nothing
// else.

#define NN_BAD(x) ((__float_as_uint(x) & 0x7f800000u) == 0x7f800000u)
#define RECORD_GRADIENTS 1u
#define RECORD_UPDATE 2u

__device__ __forceinline__ bool update_skips(const unsigned* record, unsigned step) {
    return record != 0 && record[0] != 0u && (record[0] != step || record[2] == RECORD_GRADIENTS);
}

// Claims the record for `step` (when clear, or already this step's) and adds
// c values whose first is `first`; the index is kept as UINT_MAX - i so that
// a maximum keeps the smallest.
__device__ void claim_record(unsigned* record, unsigned step, unsigned source, unsigned c, unsigned first) {
    if (c == 0u) return;
    unsigned previous = atomicCAS(&record[0], 0u, step);
    if (previous != 0u && previous != step) return;
    if (previous == 0u) record[2] = source;
    atomicAdd(&record[1], c);
    atomicMax(&record[3], 0xffffffffu - first);
}

// The loop body every update shares: c and first collect the bad parameters.
#define UPDATE_LOOP(body, check, write)                                                   \
    unsigned c = 0u, first = 0xffffffffu;                                                 \
    GRID_STRIDE(i, n) {                                                                   \
        body;                                                                             \
        if (record != 0 && (check)) { c++; if ((unsigned)i < first) first = (unsigned)i; } \
        if (store) { write; }                                                             \
    }                                                                                     \
    if (record != 0) claim_record(record, step, RECORD_UPDATE, c, first)

// m is null without momentum; look/direct choose plain or Nesterov momentum.
extern "C" __global__ void nn_sgd(float* w, const float* g, float* m, i64 n, float lr, float mu, float look,
                                  float direct, float keep, unsigned* record, unsigned step, int store) {
    if (update_skips(record, step)) return;
    if (m == 0) {
        UPDATE_LOOP(float wi = w[i]; nn_sgd_element(&wi, g[i], lr, keep), NN_BAD(wi), w[i] = wi);
        return;
    }
    UPDATE_LOOP(float wi = w[i]; float mi = m[i]; nn_sgd_momentum_element(&wi, &mi, g[i], lr, mu, look, direct, keep),
                NN_BAD(wi), w[i] = wi; m[i] = mi);
}

// m is null without momentum.
extern "C" __global__ void nn_rmsprop(float* w, const float* g, float* v, float* m, i64 n, float lr, float rho,
                                      float oneMinusRho, float eps, float mu, float keep, unsigned* record,
                                      unsigned step, int store) {
    if (update_skips(record, step)) return;
    if (m == 0) {
        UPDATE_LOOP(float wi = w[i]; float vi = v[i]; nn_rmsprop_element(&wi, &vi, g[i], lr, rho, oneMinusRho, eps, keep),
                    NN_BAD(wi), w[i] = wi; v[i] = vi);
        return;
    }
    UPDATE_LOOP(float wi = w[i]; float vi = v[i]; float mi = m[i];
                nn_rmsprop_momentum_element(&wi, &vi, &mi, g[i], lr, rho, oneMinusRho, eps, mu, keep),
                NN_BAD(wi) || NN_BAD(mi), w[i] = wi; v[i] = vi; m[i] = mi);
}

// alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t), computed on the host in double.
extern "C" __global__ void nn_adam(float* w, const float* g, float* m, float* v, i64 n, float alpha, float c1,
                                   float c2, float eps, float keep, unsigned* record, unsigned step, int store) {
    if (update_skips(record, step)) return;
    UPDATE_LOOP(float wi = w[i]; float mi = m[i]; float vi = v[i];
                nn_adam_element(&wi, &mi, &vi, g[i], alpha, c1, c2, eps, keep),
                NN_BAD(wi), w[i] = wi; m[i] = mi; v[i] = vi);
}

// ---- checks ------------------------------------------------------------------

// Values whose square is NaN or +-inf (NaN, +-inf, |x| > 1.8e19): those
// with an all-ones exponent in x*x. The first step that finds any claims the
// record (step, count, source, first index); once a step holds it, later
// steps leave it alone.
extern "C" __global__ void nn_check_finite(const float* x, i64 n, unsigned* record, unsigned step) {
    if (record[0] != 0u && record[0] != step) return;
    unsigned c = 0u, first = 0xffffffffu;
    GRID_STRIDE(i, n) if (NN_BAD(x[i] * x[i])) { c++; if ((unsigned)i < first) first = (unsigned)i; }
    claim_record(record, step, RECORD_GRADIENTS, c, first);
}
