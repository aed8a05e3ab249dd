// Sizes derived from the config and the tensor table: parameter counts and the memory a rank
// needs (weights in their stored dtype plus the KV caches for a context).
#pragma once
#include <cstdint>

#include "model/config/config.h"
#include "model/io/weight_sizes.h"

namespace modelone {

struct ParamCounts {
  int64_t total = 0;
  int64_t embedding = 0;       // token embedding + LM head
  int64_t routed_experts = 0;  // all routed experts, all layers
  int64_t per_expert = 0;      // one routed expert of one layer
  // Parameters a token passes through: everything but the routed experts it does not use
  // (top_k of n_experts per layer). active_no_embedding leaves out embedding and LM head.
  int64_t active = 0, active_no_embedding = 0;
};
ParamCounts count_params(const ModelConfig& cfg);

// What the busiest rank holds for one sequence of `context` tokens: ep ranks share the routed
// experts and cp ranks the compressed entries and indexer keys (uneven splits: the largest
// share); the raw sliding window stays whole on the rank with the newest tokens.
struct RankMemory {
  int64_t weight_bytes = 0;  // non-expert weights + this rank's experts
  int64_t window_bytes = 0;  // raw sliding window of every layer
  int64_t entry_bytes = 0;   // this rank's compressed KV entries (CSA and HCA)
  int64_t index_bytes = 0;   // this rank's CSA indexer keys
  int64_t engram_bytes = 0;  // this rank's share of the Engram tables (the busiest owner's)
  int64_t cache_bytes() const { return window_bytes + entry_bytes + index_bytes; }
  int64_t total() const { return weight_bytes + cache_bytes() + engram_bytes; }
};
// Rows of each Engram table (engram_num_embeddings, or the sum of the searched primes).
std::vector<int64_t> engram_table_rows(const ModelConfig& cfg);
// The busiest owner's bytes when the tables are split by row range over `owners` ranks.
int64_t engram_share_bytes(const ModelConfig& cfg, int owners);
// Every rank's --engram-cache of cache_rows rows per table (a table's rows at most).
int64_t engram_cache_bytes(const ModelConfig& cfg, int64_t cache_rows);
// The Engram tables are spread over max(cp, ep) ranks (the world when cp = ep = world).
RankMemory rank_memory(const ModelConfig& cfg, int64_t context, const WeightBytes& weights,
                       DType kv_dtype, int cp, int ep);

// The fewest ranks R (cp = ep = R, at most max_ranks) whose busiest rank fits budget_bytes for
// a context of `context` tokens; 0 when no R up to max_ranks does.
int ranks_needed(const ModelConfig& cfg, int64_t context, const WeightBytes& weights,
                 DType kv_dtype, int64_t budget_bytes, int max_ranks = 1 << 16);

}  // namespace modelone
