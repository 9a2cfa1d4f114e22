// n = number of parameters; w weights, g gradients, m/v optimizer state.
// Built with -fno-math-errno so sqrtf is the vector square-root instruction;
// target_clones adds an AVX2+FMA version chosen at load time where the CPU
// has it, keeping the baseline build for older processors. Every lane does
// exactly the scalar arithmetic (FMA contraction is off), so results do not
// depend on which version runs.
#include "ckernels.h"
#include <math.h>

#if defined(__x86_64__) && defined(__clang__)
#define NN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NN_CLONES
#endif

#pragma STDC FP_CONTRACT OFF

NN_CLONES
void nn_sgd_update(float *restrict w, const float *restrict g, float *restrict m, size_t n,
                   float lr, float momentum, int nesterov, float decay) {
    const float keep = 1.0f - decay;
    if (m == NULL) {
        for (size_t i = 0; i < n; i++) w[i] = w[i] * keep - lr * g[i];
        return;
    }
    // m ← μ m − η g;  w ← w + m, or w + (μ m − η g) with Nesterov.
    const float look = nesterov ? momentum : 1.0f, direct = nesterov ? lr : 0.0f;
    for (size_t i = 0; i < n; i++) {
        float mi = momentum * m[i] - lr * g[i];
        m[i] = mi;
        w[i] = w[i] * keep + (look * mi - direct * g[i]);
    }
}

NN_CLONES
void nn_rmsprop_update(float *restrict w, const float *restrict g, float *restrict v, float *restrict m, size_t n,
                       float lr, float rho, float momentum, float epsilon, float decay) {
    const float keep = 1.0f - decay, rest = 1.0f - rho;
    if (m == NULL) {
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            float vi = rho * v[i] + rest * gi * gi;
            v[i] = vi;
            w[i] = w[i] * keep - lr * gi / sqrtf(vi + epsilon);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = rho * v[i] + rest * gi * gi;
        v[i] = vi;
        float mi = momentum * m[i] + lr * gi / sqrtf(vi + epsilon);
        m[i] = mi;
        w[i] = w[i] * keep - mi;
    }
}

NN_CLONES
void nn_adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                    float alpha, float beta1, float beta2, float epsilon, float decay) {
    const float keep = 1.0f - decay, c1 = 1.0f - beta1, c2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + c1 * (gi - m[i]);
        float vi = v[i] + c2 * (gi * gi - v[i]);
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] * keep - alpha * mi / (sqrtf(vi) + epsilon);
    }
}
