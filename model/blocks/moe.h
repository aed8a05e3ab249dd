// Mixture-of-experts math: the router (sqrt-softplus scores, bias used only to choose, hash-routed
// layers take the experts from tid2eid) and one expert's SwiGLU FFN over a block of rows. Where
// the rows live and how they move between ranks is dist/'s business.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config/config.h"
#include "model/io/model_weights.h"

namespace modelone {

struct Routing {
  int64_t T = 0, k = 0;
  std::vector<int32_t> expert;  // [T, k]
  std::vector<float> weight;    // [T, k], normalised and scaled by routed_scaling_factor
};

// h[T, D] the normed FFN input; token_ids[T] (hash layers route by token id).
void route(const ModelConfig& cfg, int64_t layer, const LayerWeights& w, const float* h, int64_t T,
           const int32_t* token_ids, Routing* r);

// y[n, D] = w2(silu(min(w1 x, limit)) * clamp(w3 x, -limit, limit)) for x[n, D].
// accumulate adds into y instead of overwriting it.
void expert_ffn(const ModelConfig& cfg, const ExpertWeights& e, const float* x, int64_t n,
                float* y, bool accumulate = false);
// gate[n] = silu(min(gate, limit)) * clamp(up, -limit, limit), in place (no clamp at limit 0).
void swiglu(const ModelConfig& cfg, float* gate, const float* up, int64_t n);

}  // namespace modelone
