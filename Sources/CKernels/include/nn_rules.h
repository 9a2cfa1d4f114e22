// Per-element arithmetic that both backends run: the optimizer updates and
// the elementwise activations. The CPU's C loops (kernels.c) and the CUDA
// kernels (NNCUDA/kernels/nntrain.cu) call these, so each value is computed
// with the same operations in the same order on both.
//
// One file, three compilers: C for CKernels (and Swift's importer), C++ for
// the CUDA emulator, CUDA device code under NVRTC (which has no include path
// of its own, so the accelerator hands it this file as a named header).
// Nothing here may be fused into multiply-adds: CKernels builds with
// -ffp-contract=off, NVRTC runs with --fmad=false, and the pragma covers
// clang elsewhere.
//
// w weight, g gradient, m momentum, v second moment; keep = 1 − η·λ
// (decoupled weight decay), lr = η. See NNCore's UpdateStep for the formulas.
#ifndef NNTRAIN_NN_RULES_H
#define NNTRAIN_NN_RULES_H

#if defined(__CUDACC__)
#define NN_RULE __device__ __forceinline__
#else
#include <math.h>
#define NN_RULE static inline
#endif

#if defined(__clang__) && !defined(__CUDACC__)
#pragma STDC FP_CONTRACT OFF
#endif

// ---- optimizer rules ---------------------------------------------------------

/// SGD without momentum: w ← keep·w − η·g.
NN_RULE void nn_sgd_element(float *w, float g, float lr, float keep) {
    *w = *w * keep - lr * g;
}

/// SGD with momentum: m ← μ·m − η·g; w ← keep·w + (look·m − direct·g)
/// (look = 1, direct = 0 plain; look = μ, direct = η Nesterov).
NN_RULE void nn_sgd_momentum_element(float *w, float *m, float g, float lr, float mu, float look, float direct,
                                     float keep) {
    float mi = mu * *m - lr * g;
    *m = mi;
    *w = *w * keep + (look * mi - direct * g);
}

/// RMSprop without momentum: v ← ρ·v + (1 − ρ)·g²; w ← keep·w − η·g/√(v + ε).
NN_RULE void nn_rmsprop_element(float *w, float *v, float g, float lr, float rho, float rest, float eps,
                                float keep) {
    float vi = rho * *v + rest * g * g;
    *v = vi;
    *w = *w * keep - lr * g / sqrtf(vi + eps);
}

/// RMSprop with momentum: v as above; m ← μ·m + η·g/√(v + ε); w ← keep·w − m.
NN_RULE void nn_rmsprop_momentum_element(float *w, float *v, float *m, float g, float lr, float rho, float rest,
                                         float eps, float mu, float keep) {
    float vi = rho * *v + rest * g * g;
    *v = vi;
    float mi = mu * *m + lr * g / sqrtf(vi + eps);
    *m = mi;
    *w = *w * keep - mi;
}

/// Adam: m ← m + c₁(g − m), v ← v + c₂(g² − v), w ← keep·w − α·m/(√v + ε),
/// with c = 1 − β and α already bias-corrected.
NN_RULE void nn_adam_element(float *w, float *m, float *v, float g, float alpha, float c1, float c2, float eps,
                             float keep) {
    float mi = *m, vi = *v;
    mi = mi + c1 * (g - mi);
    vi = vi + c2 * (g * g - vi);
    *m = mi;
    *v = vi;
    *w = *w * keep - alpha * mi / (sqrtf(vi) + eps);
}

// ---- activations -------------------------------------------------------------

/// Activation kinds as kernels receive them (NNCore's `Activation.code`).
typedef enum nn_activation_kind {
    NN_LINEAR = 0,
    NN_STEP = 1,
    NN_SIGN = 2,
    NN_SIGMOID = 3,
    NN_TANH = 4,
    NN_RELU = 5,
    NN_LEAKY_RELU = 6,
    NN_SOFTMAX = 7,
} nn_activation_kind;

/// σ(z) without overflow for large |z|.
NN_RULE float nn_sigmoid(float z) {
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/// ReLU; −0 and NaN pass through unchanged.
NN_RULE float nn_relu(float x) { return x < 0.0f ? 0.0f : x; }

/// Leaky ReLU with slope s below zero.
NN_RULE float nn_leaky_relu(float x, float s) { return x >= 0.0f ? x : s * x; }

/// g(x) for every elementwise kind (softmax is row-wise, not here; it and
/// linear return x).
NN_RULE float nn_activate_element(int kind, float x, float slope) {
    switch (kind) {
    case NN_STEP: return x >= 0.0f ? 1.0f : 0.0f;
    case NN_SIGN: return x >= 0.0f ? 1.0f : -1.0f;
    case NN_SIGMOID: return nn_sigmoid(x);
    case NN_TANH: return tanhf(x);
    case NN_RELU: return nn_relu(x);
    case NN_LEAKY_RELU: return nn_leaky_relu(x, slope);
    default: return x;
    }
}

/// g'(z)·gradient from the forward output a = g(z): sigmoid a(1 − a),
/// tanh 1 − a², ReLU [a > 0], leaky ReLU 1 or slope, step and sign 0.
NN_RULE float nn_activation_backward_element(int kind, float a, float gradient, float slope) {
    switch (kind) {
    case NN_STEP: case NN_SIGN: return 0.0f;
    case NN_SIGMOID: return gradient * a * (1.0f - a);
    case NN_TANH: return gradient * (1.0f - a * a);
    case NN_RELU: return a > 0.0f ? gradient : 0.0f;
    case NN_LEAKY_RELU: return a > 0.0f ? gradient : slope * gradient;
    default: return gradient;
    }
}

#endif
