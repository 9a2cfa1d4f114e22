// Optimizer updates for the CPU backend, in C: their square roots must
// vectorize, and Swift lowers SIMD square roots lane by lane. Each function
// applies one step to n parameters in place; the formulas are those of
// NNCore's UpdateRule (Keras 3), with decoupled weight decay `decay` = η·λ.
#ifndef NNTRAIN_CKERNELS_H
#define NNTRAIN_CKERNELS_H

#include <stddef.h>

/// SGD; momentum m (NULL when μ = 0); Nesterov when `nesterov` != 0.
void nn_sgd_update(float *w, const float *g, float *m, size_t n,
                   float lr, float momentum, int nesterov, float decay);

/// RMSprop: v mean square; m momentum (NULL when μ = 0).
void nn_rmsprop_update(float *w, const float *g, float *v, float *m, size_t n,
                       float lr, float rho, float momentum, float epsilon, float decay);

/// Adam with Keras' bias correction folded into alpha = η·√(1−β₂ᵗ)/(1−β₁ᵗ).
void nn_adam_update(float *w, const float *g, float *m, float *v, size_t n,
                    float alpha, float beta1, float beta2, float epsilon, float decay);

#endif
