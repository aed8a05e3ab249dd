// Sizes derived from the config and the tensor table: parameter counts and the memory a rank
// needs (weights in their stored dtype plus the KV caches for a context).
#pragma once
#include <cstdint>

#include "model/config.h"

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

struct RankMemory {
  int64_t weight_bytes = 0;  // non-expert weights + this rank's experts
  int64_t cache_bytes = 0;   // KV caches of one sequence of `context` tokens
};
// ep ranks share the routed experts (uneven split: the largest share is reported).
RankMemory rank_memory(const ModelConfig& cfg, int64_t context, DType weight_dtype,
                       DType kv_dtype, int ep);

}  // namespace modelone
