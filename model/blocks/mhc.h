// Manifold-constrained hyper-connections (mHC): the residual is hc parallel streams per token,
// x[T, hc, D]. Each sublayer site reads a weighted sum of the streams (pre), and writes back
// post[k] * out + sum_j comb[j, k] x[j], where comb is projected to a doubly-stochastic matrix
// by Sinkhorn-Knopp.
#pragma once
#include <cstdint>

#include "model/config/config.h"
#include "model/io/weight_tensor.h"

namespace modelone {

struct HcSite {
  const Weight& fn;     // [(2 + hc) * hc, hc * D]
  const Weight& base;   // [(2 + hc) * hc]
  const Weight& scale;  // [3]
};

// Per token t of x[T, hc, D]: collapsed[t, D] = sum_i pre_i x_i, post[t, hc], comb[t, hc, hc].
void hc_pre(const ModelConfig& cfg, const HcSite& site, const float* x, int64_t T,
            float* collapsed, float* post, float* comb);

// hc_pre in two parts. V4.1 collapses each site with the previous site's pre (its first
// attention with [1, 0, ..., 0], the head with the last FFN's): the mixes pre[T, hc],
// post[T, hc], comb[T, hc, hc] of x, and the collapse y[t, D] = sum_i pre[t, i] x[t, i, :].
void hc_mix(const ModelConfig& cfg, const HcSite& site, const float* x, int64_t T, float* pre,
            float* post, float* comb);
void hc_collapse(const float* x, int64_t T, int64_t hc, int64_t D, const float* pre, float* y);

// x[t, k, :] = post[t, k] * out[t, :] + sum_j comb[t, j, k] * x[t, j, :], in place.
void hc_post(int64_t T, int64_t hc, int64_t D, const float* out, const float* post,
             const float* comb, float* x);

// The final collapse: y[t, D] = sum_i (sigmoid(mix_i * scale + base_i) + eps) x_i.
void hc_head(const ModelConfig& cfg, const Weight& fn, const Weight& base, const Weight& scale,
             const float* x, int64_t T, float* y);

// Sinkhorn-Knopp on one hc x hc matrix of logits (already scaled and biased): row softmax + eps,
// a column normalisation, then (iters - 1) rounds of row then column normalisation.
void sinkhorn(float* m, int64_t hc, int64_t iters, float eps);
// The same on T matrices m[T, hc, hc], bit for bit: 16 of them side by side in vector lanes
// through the normalisations (each lane the scalar's operations in its order; IEEE division).
// A decode step of a small model spent a quarter of its time in one sinkhorn after another.
void sinkhorn_many(float* m, int64_t T, int64_t hc, int64_t iters, float eps);

}  // namespace modelone
