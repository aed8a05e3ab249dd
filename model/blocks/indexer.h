// The lightning indexer of CSA layers: for query t at global position p it scores every
// compressed entry s whose window has closed (s < (p + 1) / rate) as
//   score = sum_h w[t, h] * ReLU(q[t, h] . k[s]) / sqrt(index_head_dim)
// and keeps the top min(index_topk, entries visible) of them, ties to the lower global index.
// Two forms of the same selection:
//   indexer_select      prefill: the keys of every window in one dense table, picks per query;
//   indexer_candidates  decode: one query against the keys one rank holds, giving (score, global
//                       index) candidates; merge_candidates() takes the global top-k of the
//                       candidates of every rank, the same set as on one rank.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config/config.h"
#include "model/cache/layer_cache.h"
#include "model/kernels/rope.h"
#include "model/io/model_weights.h"

namespace modelone {

struct IndexerQueries {
  std::vector<float> q;  // [T, nI * Di], roped
  std::vector<float> w;  // [T, nI], already scaled by nI^-0.5
};

// q_lat[T, q_lora] is the attention's normed q-LoRA latent, h[T, D] the block input, pos[T]
// the global positions of the rows.
void indexer_queries(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope,
                     const float* q_lat, const float* h, int64_t T, const int64_t* pos,
                     IndexerQueries* out);

// keys[n_keys, Di]: the keys of windows 0 .. n_keys - 1 in global order. top[T, index_topk]
// receives global entry indices (best first), count[T] how many are valid.
// The T queries are rows [r0, r0 + T) of iq (a batch step selects per sequence on its rows).
void indexer_select(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T,
                    const int64_t* pos, const float* keys, int64_t n_keys, int32_t* top,
                    int32_t* count, int64_t r0 = 0);
// The same on the bf16 path with the keys already in bf16: kb[n_keys rounded up to 64, Di], zero
// rows past n_keys (as KvStore::view_bf16 gives them), so a bf16 or fp8 store is read as is.
void indexer_select_bf16(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T,
                         const int64_t* pos, const uint16_t* kb, int64_t n_keys, int32_t* top,
                         int32_t* count, int64_t r0 = 0);

struct Candidate {
  float score;
  int32_t index;  // global window index
};

// Query q[nI * Di], weights w[nI] at position pos against the keys in `keys` (one rank's share,
// any dtype): appends up to index_topk best visible candidates to out, best first.
void indexer_candidates(const ModelConfig& cfg, const float* q, const float* w, int64_t pos,
                        const EntryStore& keys, std::vector<Candidate>* out);

// The k best of n candidates (score descending, ties to the lower index) into top[<= k];
// returns how many.
int64_t merge_candidates(std::vector<Candidate> c, int64_t k, int32_t* top);

// Key rows the bf16 path feeds a product: n rounded up to 64 (zero rows past n), so the matmul
// sees n / 64 shapes, not one per key count.
inline int64_t pad64(int64_t n) { return (n + 63) / 64 * 64; }

// The bf16 path's indexer inputs, rounded once: keys[n_keys, Di] into kb [n_keys rounded up to
// 64, Di] (zero rows past the end, so products see n_keys / 64 shapes, not one per token) and
// the queries q[T, nI * Di] into qb.
void indexer_inputs_bf16(const float* keys, int64_t n_keys, const float* q, int64_t T, int64_t nI,
                         int64_t Di, std::vector<uint16_t>* kb, std::vector<uint16_t>* qb);

}  // namespace modelone
