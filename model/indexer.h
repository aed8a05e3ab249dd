// The lightning indexer of CSA layers: for query t at position p it scores every compressed
// entry s whose window has closed (s < (p + 1) / rate) as
//   score = sum_h w[t, h] * ReLU(q[t, h] . k[s]) / sqrt(index_head_dim)
// and keeps the top min(index_topk, entries visible) of them.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/kv_store.h"
#include "model/rope.h"
#include "model/weights.h"

namespace modelone {

struct IndexerQueries {
  std::vector<float> q;  // [T, nI * Di], roped
  std::vector<float> w;  // [T, nI], already scaled by nI^-0.5
};

// q_lat[T, q_lora] is the attention's normed q-LoRA latent, h[T, D] the block input.
void indexer_queries(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope,
                     const float* q_lat, const float* h, int64_t T, int64_t pos0,
                     IndexerQueries* out);

// top[T, index_topk] receives entry indices (best first), count[T] how many are valid.
void indexer_select(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T, int64_t pos0,
                    const KvStore& keys, int32_t* top, int32_t* count);

}  // namespace modelone
