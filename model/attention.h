// DeepSeek-V4 attention for a chunk of T consecutive tokens of one sequence (positions
// pos0 .. pos0 + T - 1), in steps the parallel runtime can interleave with communication:
//   attn_project   q-LoRA queries (per-head RMS norm, RoPE) and the shared KV row (K = V)
//   attn_keys      sliding-window source rows, compressor / indexer updates, per-query picks
//   attn_attend    softmax over window + compressed keys with the per-head sink
//   attn_output    inverse RoPE on the output, grouped low-rank output projection
// attention_forward() runs them in order for a single rank.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/indexer.h"
#include "model/layer_cache.h"
#include "model/rope.h"
#include "model/weights.h"

namespace modelone {

struct AttnProj {
  std::vector<float> q_lat;  // [T, q_lora]   normed q-LoRA latent (the indexer reads it too)
  std::vector<float> q;      // [T, H * Dh]   per-head normed, roped
  std::vector<float> kv;     // [T, Dh]       normed, roped, rounded to the cache dtype
};

// The keys each query may use.
struct AttnKeys {
  std::vector<float> window;     // [n_prev + T, Dh]: cached window rows, then this chunk's rows
  int64_t window_first_pos = 0;  // position of window row 0
  const KvStore* entries = nullptr;  // compressed entries (CSA / HCA), else null
  std::vector<int32_t> picks;    // CSA: [T, index_topk] chosen entries; count in n_picks
  std::vector<int32_t> n_picks;  // [T]
  IndexerQueries iq;             // CSA: the indexer's queries (scratch)
};

void attn_project(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, const float* h,
                  int64_t T, int64_t pos0, const LayerCache& cache, AttnProj* p);

// Builds the key sets and advances the cache (window ring, compressors, indexer keys) past
// this chunk.
void attn_keys(const ModelConfig& cfg, int64_t layer, const AttnWeights& w, const Rope& rope,
               const float* h, int64_t T, int64_t pos0, const AttnProj& p, LayerCache& cache,
               AttnKeys* k);

// o[T, H * Dh] = softmax(q . keys / sqrt(Dh), sink) @ keys.
void attn_attend(const ModelConfig& cfg, int64_t layer, const AttnWeights& w, const AttnProj& p,
                 const AttnKeys& k, int64_t T, int64_t pos0, float* o);

// out[T, D] from o[T, H * Dh] (o is modified: inverse RoPE).
void attn_output(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, float* o,
                 int64_t T, int64_t pos0, float* out);

// Buffers of one attention call, kept by the caller across layers and steps so large prefill
// chunks do not map fresh memory every layer.
struct AttnScratch {
  AttnProj p;
  AttnKeys k;
  std::vector<float> o;  // [T, H * Dh]
};

void attention_forward(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                       const Rope& rope, const float* h, int64_t T, int64_t pos0,
                       LayerCache& cache, float* out, AttnScratch* scratch);

}  // namespace modelone
