#include "model/indexer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "model/gemm.h"
#include "model/kernels.h"

namespace modelone {

void indexer_queries(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope,
                     const float* q_lat, const float* h, int64_t T, int64_t pos0,
                     IndexerQueries* out) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  out->q.resize(size_t(T * nI * Di));
  out->w.resize(size_t(T * nI));
  linear(q_lat, T, cfg.q_lora_rank, w.idx_wq_b, 0, nI * Di, out->q.data(), nI * Di);
  for (int64_t t = 0; t < T; ++t) rope.apply(out->q.data() + t * nI * Di, nI, Di, pos0 + t);
  linear(h, T, cfg.hidden_size, w.idx_weights_proj, 0, nI, out->w.data(), nI);
  const float ws = 1.f / std::sqrt(float(nI));
  for (auto& v : out->w) v *= ws;
}

void indexer_select(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T, int64_t pos0,
                    const KvStore& keys, int32_t* top, int32_t* count) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim, K = cfg.index_topk;
  const int64_t n_max = std::min(keys.rows(), (pos0 + T) / cfg.csa_rate);
  std::vector<float> tmp;
  const float* kf = keys.view(0, n_max, tmp);
  const float scale = 1.f / std::sqrt(float(Di));
#pragma omp parallel
  {
    std::vector<float> logits, score;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t n = std::min(n_max, (pos0 + t + 1) / cfg.csa_rate);  // closed windows
      const int64_t k = std::min(K, n);
      count[t] = int32_t(k);
      if (k == 0) continue;
      logits.resize(size_t(nI * n));
      score.assign(size_t(n), 0.f);
      sgemm_nt(nI, n, Di, iq.q.data() + t * nI * Di, Di, kf, Di, logits.data(), n);
      const float* wt = iq.w.data() + t * nI;
      for (int64_t hh = 0; hh < nI; ++hh) {
        const float* l = logits.data() + hh * n;
        for (int64_t s = 0; s < n; ++s) score[size_t(s)] += std::max(l[s], 0.f) * scale * wt[hh];
      }
      top_k(score.data(), n, k, top + t * K);
    }
  }
}

}  // namespace modelone
