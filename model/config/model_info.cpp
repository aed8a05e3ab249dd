#include "model/config/model_info.h"

#include <algorithm>

#include "model/blocks/engram.h"
#include "model/blocks/engram_hash.h"
#include "model/cache/layer_cache.h"
#include "model/io/tensor_table.h"

namespace modelone {

ParamCounts count_params(const ModelConfig& cfg) {
  ParamCounts c;
  for (auto& t : enumerate_tensors(cfg)) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    c.total += n;
    if (t.spec->scope == Scope::Expert) {
      c.routed_experts += n;
      if (t.layer == 0 && t.expert == 0) c.per_expert += n;
    }
    const std::string p = t.spec->pattern;
    if (p == "model.embed_tokens.weight" || p == "head.weight") c.embedding += n;
  }
  const int64_t used = cfg.num_layers * cfg.top_k * c.per_expert;
  c.active = c.total - c.routed_experts + used;
  c.active_no_embedding = c.active - c.embedding;
  return c;
}

std::vector<int64_t> engram_table_rows(const ModelConfig& cfg) {
  const EngramConfig& e = cfg.engram;
  if (!e.enabled()) return {};
  if (!e.num_embeddings.empty()) return e.num_embeddings;
  std::vector<int64_t> rows;
  for (auto& hp : engram_hash_params(e.layers, e.max_ngram, e.n_heads, e.prime_start,
                                     e.compressed_vocab))
    rows.push_back(hp.rows);
  return rows;
}

int64_t engram_share_bytes(const ModelConfig& cfg, int owners) {
  int64_t b = 0;
  for (int64_t r : engram_table_rows(cfg))
    b += (r + owners - 1) / owners * engram_row_bytes(cfg.engram.table_dtype, cfg.engram.head_dim);
  return b;
}

int64_t engram_cache_bytes(const ModelConfig& cfg, int64_t cache_rows) {
  if (!cfg.engram.enabled() || cache_rows <= 0) return 0;
  int64_t b = 0;
  for (int64_t r : engram_table_rows(cfg))
    b += std::min(r, cache_rows) * engram_row_bytes(cfg.engram.table_dtype, cfg.engram.head_dim);
  return b;
}

namespace {
RankMemory share(const WeightBytes& wb, const CacheBytes& cache, const ModelConfig& cfg, int cp,
                 int ep) {
  RankMemory m;
  m.weight_bytes = wb.per_rank(cfg, ep);
  m.window_bytes = cache.window;
  m.entry_bytes = (cache.entries + cp - 1) / cp;
  m.index_bytes = (cache.index_keys + cp - 1) / cp;
  m.engram_bytes = engram_share_bytes(cfg, std::max(cp, ep));
  return m;
}
}  // namespace

RankMemory rank_memory(const ModelConfig& cfg, int64_t context, const WeightBytes& weights,
                       DType kv_dtype, int cp, int ep) {
  return share(weights, cache_bytes_for(cfg, kv_dtype, context), cfg, cp, ep);
}

int ranks_needed(const ModelConfig& cfg, int64_t context, const WeightBytes& weights,
                 DType kv_dtype, int64_t budget_bytes, int max_ranks) {
  const CacheBytes cache = cache_bytes_for(cfg, kv_dtype, context);
  for (int r = 1; r <= max_ranks; ++r)
    if (share(weights, cache, cfg, r, r).total() <= budget_bytes) return r;
  return 0;
}

}  // namespace modelone
