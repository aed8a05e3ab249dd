#include "model/model_info.h"

#include "model/layer_cache.h"
#include "model/tensor_table.h"

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

RankMemory rank_memory(const ModelConfig& cfg, int64_t context, DType weight_dtype,
                       DType kv_dtype, int ep) {
  RankMemory m;
  const ParamCounts c = count_params(cfg);
  const int64_t experts_here = (cfg.n_experts + ep - 1) / ep;
  const int64_t params = c.total - c.routed_experts + cfg.num_layers * experts_here * c.per_expert;
  m.weight_bytes = params * int64_t(dtype_size(weight_dtype));
  m.cache_bytes = cache_bytes_for(cfg, kv_dtype, context).total();
  return m;
}

}  // namespace modelone
