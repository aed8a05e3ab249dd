#include "model/blocks/moe.h"

#include <algorithm>
#include <cmath>

#include "model/base/check.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"

namespace modelone {

void route(const ModelConfig& cfg, int64_t layer, const LayerWeights& w, const float* h, int64_t T,
           const int32_t* token_ids, Routing* r) {
  const int64_t E = cfg.n_experts, k = cfg.top_k;
  r->T = T;
  r->k = k;
  r->expert.resize(size_t(T * k));
  r->weight.resize(size_t(T * k));
  std::vector<float> scores(static_cast<size_t>(T * E));
  linear_fp32(h, T, cfg.hidden_size, w.gate, 0, E, scores.data(), E);
  const float temp = float(cfg.gate_temp);  // V4.1's gate_temp (1 in V4)
  for (auto& s : scores) {
    if (cfg.v41()) s /= temp;
    s = cfg.scoring_func == "sigmoid" ? sigmoid(s) : std::sqrt(softplus(s));
  }
  const bool hash = cfg.mlp[size_t(layer)] == MlpKind::HashMoE;
  const std::vector<float> bias = hash || w.gate_bias.empty() ? std::vector<float>() : w.gate_bias.to_f32();
  std::vector<float> choice(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* st = scores.data() + t * E;
    int32_t* ex = r->expert.data() + t * k;
    if (hash) {
      const int64_t id = token_ids[t];
      for (int64_t j = 0; j < k; ++j) ex[j] = int32_t(w.tid2eid.at_i64(id * k + j));
    } else {
      // The bias only decides which experts; the weights use the unbiased scores.
      for (int64_t e = 0; e < E; ++e) choice[size_t(e)] = st[e] + (bias.empty() ? 0.f : bias[size_t(e)]);
      top_k(choice.data(), E, k, ex);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < k; ++j) sum += st[ex[j]];
    // V4.1 normalises only when it picks more than one expert.
    const bool norm = !cfg.v41() || k > 1;
    const float s = float(cfg.routed_scaling_factor) / (norm ? sum + 1e-20f : 1.f);
    for (int64_t j = 0; j < k; ++j) r->weight[size_t(t * k + j)] = st[ex[j]] * s;
  }
}

void expert_ffn(const ModelConfig& cfg, const ExpertWeights& e, const float* x, int64_t n,
                float* y, bool accumulate) {
  if (n == 0) return;
  MO_CHECK(e.loaded(), "expert weights not loaded on this rank");
  const int64_t D = cfg.hidden_size, I = e.w1.rows();
  static thread_local std::vector<float> gate, up;
  gate.resize(size_t(n * I));
  up.resize(size_t(n * I));
  linear(x, n, D, e.w1, 0, I, gate.data(), I);
  linear(x, n, D, e.w3, 0, I, up.data(), I);
  swiglu(cfg, gate.data(), up.data(), n * I);
  linear(gate.data(), n, I, e.w2, 0, D, y, D, accumulate);
}

void swiglu(const ModelConfig& cfg, float* gate, const float* up, int64_t n) {
  const float lim = float(cfg.swiglu_limit);
  const bool clamp = lim > 0;
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i], u = up[i];
    if (clamp) {
      g = std::min(g, lim);
      u = std::clamp(u, -lim, lim);
    }
    gate[i] = silu(g) * u;
  }
}

}  // namespace modelone
