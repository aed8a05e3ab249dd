#include "model/layer_cache.h"

#include <algorithm>

namespace modelone {

namespace {
CompressorState make_state(int64_t rate, int64_t width, bool overlap) {
  CompressorState s;
  s.rate = rate;
  s.width = width;
  s.overlap = overlap;
  s.pending_kv.assign(size_t(rate * s.proj_width()), 0.f);
  s.pending_gate.assign(size_t(rate * s.proj_width()), 0.f);
  if (overlap) {
    s.prev_kv.assign(size_t(rate * width), 0.f);
    s.prev_gate.assign(size_t(rate * width), 0.f);
  }
  return s;
}
}  // namespace

std::vector<LayerCache> make_layer_caches(const ModelConfig& cfg, DType kv_dtype) {
  std::vector<LayerCache> caches(static_cast<size_t>(cfg.num_layers));
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    LayerCache& c = caches[size_t(l)];
    c.window = RingStore(kv_dtype, cfg.head_dim, cfg.sliding_window - 1);
    const AttnKind k = cfg.attn[size_t(l)];
    if (k == AttnKind::Sliding) continue;
    c.comp = make_state(cfg.compress_rate(l), cfg.head_dim, k == AttnKind::CSA);
    c.entries = KvStore(kv_dtype, cfg.head_dim);
    if (k == AttnKind::CSA) {
      c.idx_comp = make_state(cfg.csa_rate, cfg.index_head_dim, true);
      c.idx_keys = KvStore(kv_dtype, cfg.index_head_dim);
    }
  }
  return caches;
}

int64_t cache_bytes_for(const ModelConfig& cfg, DType kv_dtype, int64_t n_tokens) {
  const int64_t es = int64_t(dtype_size(kv_dtype));
  int64_t total = 0;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    total += std::min(n_tokens, cfg.sliding_window - 1) * cfg.head_dim * es;
    const AttnKind k = cfg.attn[size_t(l)];
    if (k == AttnKind::Sliding) continue;
    total += n_tokens / cfg.compress_rate(l) * cfg.head_dim * es;
    if (k == AttnKind::CSA) total += n_tokens / cfg.csa_rate * cfg.index_head_dim * es;
  }
  return total;
}

}  // namespace modelone
