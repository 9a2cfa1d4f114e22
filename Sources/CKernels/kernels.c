// n = number of values; w weights, g gradients, m/v optimizer state.
// Built with -fno-math-errno so sqrtf is the vector square-root instruction;
// target_clones adds an AVX2+FMA version chosen at load time where the CPU
// has it, keeping the baseline build for older processors. Every lane does
// exactly the scalar arithmetic (FMA contraction is off), so results do not
// depend on which version runs.
#include "ckernels.h"

#if defined(__x86_64__) && defined(__clang__)
#define NN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NN_CLONES
#endif

// Elementwise loops may run in place (output == input), which no restrict
// can express: the loop pragma tells the vectorizer that each index only
// reads and writes itself, so no runtime overlap check sends it to the
// scalar path.
#if defined(__clang__)
#define NN_EACH _Pragma("clang loop vectorize(assume_safety)") for
#else
#define NN_EACH for
#endif

#pragma STDC FP_CONTRACT OFF

// The updates can check what they write. A value is NaN or ±inf exactly when
// its exponent bits are all ones, the largest exponent there is, so the
// check keeps the maximum of the exponent fields: one AND and one integer
// maximum per value, which vectorizes. It looks at the new weights only: a
// non-finite momentum makes the weight computed from it non-finite in the
// same step, and a second moment (an average of g²) cannot overflow while
// every g² is finite, which the trainer's gradient check ensures. With
// store = 0 the updates only check (a trial of the step) and write nothing. Each returns 1
// if a value was non-finite, else 0 (always 0 with check = 0).
#define NN_EXPONENT 0x7f800000u
static inline unsigned nn_top(unsigned top, float x) {
    unsigned u;
    __builtin_memcpy(&u, &x, sizeof u);
    u &= NN_EXPONENT;
    return top > u ? top : u;
}

// One update loop, in its three forms: apply, apply and check, check only.
// `load` reads the element's values into locals, `step` updates them,
// `test` folds them into `top`, and `save` writes them back.
#define NN_UPDATE(load, step, test, save)                             \
    unsigned top = 0;                                                 \
    if (!check) {                                                     \
        for (size_t i = 0; i < n; i++) { load; step; save; }          \
    } else if (store) {                                               \
        for (size_t i = 0; i < n; i++) { load; step; test; save; }    \
    } else {                                                          \
        for (size_t i = 0; i < n; i++) { load; step; test; }          \
    }                                                                 \
    return top == NN_EXPONENT

NN_CLONES
int nn_sgd_update(float *restrict w, const float *restrict g, float *restrict m, size_t n,
                  float lr, float momentum, float look, float direct, float keep, int store, int check) {
    if (m == NULL) {
        NN_UPDATE(float wi = w[i], nn_sgd_element(&wi, g[i], lr, keep), top = nn_top(top, wi), w[i] = wi);
    }
    NN_UPDATE(float wi = w[i]; float mi = m[i],
              nn_sgd_momentum_element(&wi, &mi, g[i], lr, momentum, look, direct, keep),
              top = nn_top(top, wi), w[i] = wi; m[i] = mi);
}

NN_CLONES
int nn_rmsprop_update(float *restrict w, const float *restrict g, float *restrict v, float *restrict m, size_t n,
                      float lr, float rho, float rest, float epsilon, float momentum, float keep, int store, int check) {
    if (m == NULL) {
        NN_UPDATE(float wi = w[i]; float vi = v[i], nn_rmsprop_element(&wi, &vi, g[i], lr, rho, rest, epsilon, keep),
                  top = nn_top(top, wi), w[i] = wi; v[i] = vi);
    }
    NN_UPDATE(float wi = w[i]; float vi = v[i]; float mi = m[i],
              nn_rmsprop_momentum_element(&wi, &vi, &mi, g[i], lr, rho, rest, epsilon, momentum, keep),
              top = nn_top(top, wi), w[i] = wi; v[i] = vi; m[i] = mi);
}

NN_CLONES
int nn_adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                   float alpha, float c1, float c2, float epsilon, float keep, int store, int check) {
    NN_UPDATE(float wi = w[i]; float mi = m[i]; float vi = v[i],
              nn_adam_element(&wi, &mi, &vi, g[i], alpha, c1, c2, epsilon, keep),
              top = nn_top(top, wi), w[i] = wi; m[i] = mi; v[i] = vi);
}

// One loop per kind, so that each is a straight loop the compiler can vectorize.
#define NN_FORWARD(kind) NN_EACH (size_t i = 0; i < n; i++) y[i] = nn_activate_element(kind, x[i], slope)

NN_CLONES
void nn_activate_loop(const float *x, float *y, size_t n, int kind, float slope) {
    switch (kind) {
    case NN_STEP: NN_FORWARD(NN_STEP); break;
    case NN_SIGN: NN_FORWARD(NN_SIGN); break;
    case NN_SIGMOID: NN_FORWARD(NN_SIGMOID); break;
    case NN_TANH: NN_FORWARD(NN_TANH); break;
    case NN_RELU: NN_FORWARD(NN_RELU); break;
    case NN_LEAKY_RELU: NN_FORWARD(NN_LEAKY_RELU); break;
    default: NN_FORWARD(NN_LINEAR); break;
    }
}

#define NN_BACKWARD(kind) NN_EACH (size_t i = 0; i < n; i++) d[i] = nn_activation_backward_element(kind, a[i], gradient[i], slope)

NN_CLONES
void nn_activation_backward_loop(const float *a, const float *gradient, float *d, size_t n, int kind, float slope) {
    switch (kind) {
    case NN_STEP: NN_BACKWARD(NN_STEP); break;
    case NN_SIGN: NN_BACKWARD(NN_SIGN); break;
    case NN_SIGMOID: NN_BACKWARD(NN_SIGMOID); break;
    case NN_TANH: NN_BACKWARD(NN_TANH); break;
    case NN_RELU: NN_BACKWARD(NN_RELU); break;
    case NN_LEAKY_RELU: NN_BACKWARD(NN_LEAKY_RELU); break;
    default: NN_BACKWARD(NN_LINEAR); break;
    }
}

// MARK: - 16-bit floats

#include <string.h>
#include <stdint.h>

static inline uint16_t nn_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float nn_from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// The fp16 loops twice: with F16C's conversion instructions where the CPU
// has them (x86-64), else with the compiler's conversion routines.
#define NN_FP16_LOOPS(suffix, attributes)                                                              \
    attributes static void nn_compress_fp16##suffix(const float *g, float *e, unsigned short *q, size_t n) { \
        for (size_t i = 0; i < n; i++) {                                                               \
            float c = g[i] + e[i];                                                                     \
            _Float16 h = (_Float16)c;                                                                  \
            memcpy(&q[i], &h, 2);                                                                      \
            e[i] = c - (float)h;                                                                       \
        }                                                                                              \
    }                                                                                                  \
    attributes static void nn_expand_fp16##suffix(const unsigned short *q, float *g, size_t n) {       \
        for (size_t i = 0; i < n; i++) {                                                               \
            _Float16 h;                                                                                \
            memcpy(&h, &q[i], 2);                                                                      \
            g[i] = (float)h;                                                                           \
        }                                                                                              \
    }                                                                                                  \
    attributes static void nn_sum_fp16##suffix(const unsigned short *in, unsigned short *inout, size_t n) { \
        for (size_t i = 0; i < n; i++) {                                                               \
            _Float16 a, b;                                                                             \
            memcpy(&a, &in[i], 2);                                                                     \
            memcpy(&b, &inout[i], 2);                                                                  \
            _Float16 h = (_Float16)((float)a + (float)b);                                              \
            memcpy(&inout[i], &h, 2);                                                                  \
        }                                                                                              \
    }

NN_FP16_LOOPS(_plain, )
#if defined(__x86_64__)
#include <cpuid.h>
NN_FP16_LOOPS(_f16c, __attribute__((target("avx2,f16c"))))
static int nn_has_f16c(void) {
    static int known = -1;
    if (known < 0) {
        // F16C is bit 29 of ECX in CPUID leaf 1 (older compilers' builtins do not name it).
        unsigned a, b, c = 0, d;
        int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        known = f16c && __builtin_cpu_supports("avx2");
    }
    return known;
}
#else
static int nn_has_f16c(void) { return 0; }
#define nn_compress_fp16_f16c nn_compress_fp16_plain
#define nn_expand_fp16_f16c nn_expand_fp16_plain
#define nn_sum_fp16_f16c nn_sum_fp16_plain
#endif

void nn_compress_half(const float *g, float *e, unsigned short *q, size_t n, int format) {
    if (format == 0) {
        for (size_t i = 0; i < n; i++) {
            float c = g[i] + e[i];
            q[i] = nn_to_bf16(c);
            e[i] = c - nn_from_bf16(q[i]);
        }
    } else if (nn_has_f16c()) {
        nn_compress_fp16_f16c(g, e, q, n);
    } else {
        nn_compress_fp16_plain(g, e, q, n);
    }
}

void nn_expand_half(const unsigned short *q, float *g, size_t n, int format) {
    if (format == 0) {
        for (size_t i = 0; i < n; i++) g[i] = nn_from_bf16(q[i]);
    } else if (nn_has_f16c()) {
        nn_expand_fp16_f16c(q, g, n);
    } else {
        nn_expand_fp16_plain(q, g, n);
    }
}

void nn_sum_half(const unsigned short *in, unsigned short *inout, size_t n, int format) {
    if (format == 0) {
        for (size_t i = 0; i < n; i++) inout[i] = nn_to_bf16(nn_from_bf16(in[i]) + nn_from_bf16(inout[i]));
    } else if (nn_has_f16c()) {
        nn_sum_fp16_f16c(in, inout, n);
    } else {
        nn_sum_fp16_plain(in, inout, n);
    }
}

void nn_sum_buffers(const float *const *in, size_t count, float *out, size_t n) {
    if (count == 0) return;
    if (count == 1) {
        if (out != in[0]) memmove(out, in[0], n * sizeof(float));
        return;
    }
    if (count == 2) {  // one addition an element: no partial sums to keep
        const float *a = in[0], *b = in[1];
        for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
        return;
    }
    // Blocks of partial sums that stay in L1, so each input is read once.
    enum { block = 1024 };
    float partial[block];
    for (size_t start = 0; start < n; start += block) {
        size_t m = n - start < block ? n - start : block;
        const float *a = in[0] + start, *b = in[1] + start;
        for (size_t i = 0; i < m; i++) partial[i] = a[i] + b[i];
        for (size_t k = 2; k < count; k++) {
            const float *c = in[k] + start;
            for (size_t i = 0; i < m; i++) partial[i] += c[i];
        }
        memcpy(out + start, partial, m * sizeof(float));
    }
}
