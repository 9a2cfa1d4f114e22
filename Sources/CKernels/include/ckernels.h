// The CPU backend's elementwise loops, in C: their square roots must
// vectorize, and Swift lowers SIMD square roots lane by lane. Each loop
// applies nn_rules.h's per-element arithmetic (shared with the CUDA kernels)
// to n values in place; the constants come from NNCore's UpdateStep. The
// updates return 1 when a weight or state value they computed is NaN or
// ±inf, and with store = 0 only compute that answer, writing nothing.
#ifndef NNTRAIN_CKERNELS_H
#define NNTRAIN_CKERNELS_H

#include <stddef.h>
#include "nn_rules.h"

/// SGD; momentum m (NULL without a momentum slot).
int nn_sgd_update(float *w, const float *g, float *m, size_t n,
                  float lr, float momentum, float look, float direct, float keep, int store, int check);

/// RMSprop: v mean square; m momentum (NULL without a momentum slot).
int nn_rmsprop_update(float *w, const float *g, float *v, float *m, size_t n,
                      float lr, float rho, float rest, float epsilon, float momentum, float keep, int store, int check);

/// Adam; alpha already holds Keras' bias correction.
int nn_adam_update(float *w, const float *g, float *m, float *v, size_t n,
                   float alpha, float c1, float c2, float epsilon, float keep, int store, int check);

/// y ← g(x) for an elementwise `kind` (an nn_activation_kind other than
/// softmax); y may be x itself, but may not overlap it otherwise.
void nn_activate_loop(const float *x, float *y, size_t n, int kind, float slope);

/// d ← g'(z)·gradient from the forward output a; d may be `gradient` itself,
/// but may not overlap it otherwise.
void nn_activation_backward_loop(const float *a, const float *gradient, float *d, size_t n, int kind, float slope);

// Gradient compression to 16-bit floats for the allreduce: formats 0 =
// bfloat16 (float's exponent, 8 bits of significand), 1 = IEEE binary16
// (5 exponent bits, 11 of significand, largest finite 65504); rounding is
// to nearest, ties to even.

/// q ← round(g + e); e ← (g + e) − q: what rounding lost is fed back next step.
void nn_compress_half(const float *g, float *e, unsigned short *q, size_t n, int format);

/// g ← q as floats.
void nn_expand_half(const unsigned short *q, float *g, size_t n, int format);

/// inout ← round(in + inout), the allreduce's sum of two ranks' halves.
void nn_sum_half(const unsigned short *in, unsigned short *inout, size_t n, int format);

/// out[i] ← ((in[0][i] + in[1][i]) + in[2][i]) + … + in[count − 1][i], in
/// that order whatever the rank that computes it, so every element's sum is
/// the same on every rank: the shared-memory allreduce's share of one rank.
/// `out` may be one of the inputs (each element is read before it is written).
void nn_sum_buffers(const float *const *in, size_t count, float *out, size_t n);

#endif
