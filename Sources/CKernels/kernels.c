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

NN_CLONES
void nn_sgd_update(float *restrict w, const float *restrict g, float *restrict m, size_t n,
                   float lr, float momentum, float look, float direct, float keep) {
    if (m == NULL) {
        for (size_t i = 0; i < n; i++) nn_sgd_element(&w[i], g[i], lr, keep);
        return;
    }
    for (size_t i = 0; i < n; i++) nn_sgd_momentum_element(&w[i], &m[i], g[i], lr, momentum, look, direct, keep);
}

NN_CLONES
void nn_rmsprop_update(float *restrict w, const float *restrict g, float *restrict v, float *restrict m, size_t n,
                       float lr, float rho, float rest, float epsilon, float momentum, float keep) {
    if (m == NULL) {
        for (size_t i = 0; i < n; i++) nn_rmsprop_element(&w[i], &v[i], g[i], lr, rho, rest, epsilon, keep);
        return;
    }
    for (size_t i = 0; i < n; i++)
        nn_rmsprop_momentum_element(&w[i], &v[i], &m[i], g[i], lr, rho, rest, epsilon, momentum, keep);
}

NN_CLONES
void nn_adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                    float alpha, float c1, float c2, float epsilon, float keep) {
    for (size_t i = 0; i < n; i++) nn_adam_element(&w[i], &m[i], &v[i], g[i], alpha, c1, c2, epsilon, keep);
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
