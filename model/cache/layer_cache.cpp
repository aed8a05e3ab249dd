#include "model/cache/layer_cache.h"

#include <algorithm>

#include "model/base/check.h"


namespace modelone {

CompressorState compressor_state(int64_t rate, int64_t width, bool overlap) {
  CompressorState s;
  s.rate = rate;
  s.width = width;
  s.overlap = overlap;
  s.kv.assign(size_t(s.capacity() * s.proj_width()), 0.f);
  s.gate.assign(size_t(s.capacity() * s.proj_width()), 0.f);
  return s;
}

void EntryStore::append(const float* r, int64_t n, int64_t first_index) {
  rows.append(r, n);
  for (int64_t i = 0; i < n; ++i) index.push_back(int32_t(first_index + i));
}

void EntryStore::append(const float* r, int64_t n, const int32_t* idx) {
  rows.append(r, n);
  index.insert(index.end(), idx, idx + n);
}

void LayerCache::restart_at(int64_t p) {
  n_tokens = p;
  window.clear();
  comp.first = idx_comp.first = p;
  comp.n = idx_comp.n = 0;
}

DType kv_cache_dtype(KvCacheChoice choice, const ModelConfig& cfg, Compute compute) {
  if (choice == KvCacheChoice::F32) return DType::F32;
  if (choice == KvCacheChoice::BF16) return DType::BF16;
  if (choice == KvCacheChoice::FP8) return DType::F8_E4M3;
  if (choice == KvCacheChoice::Auto)
    return cfg.v41() && cfg.fake_quant ? DType::F4_E2M1
           : compute == Compute::BF16  ? DType::BF16 : DType::F32;
  MO_REQUIRE(cfg.v41(), "--kv-cache fp4 is DeepSeek-V4.1's trained cache form (FP8 window, FP4 "
             "entries and keys); ", cfg.name, " is a V4 model");
  return DType::F4_E2M1;
}

const char* kv_cache_name(DType kv) {
  return kv == DType::F4_E2M1 ? "fp4" : kv == DType::F8_E4M3 ? "fp8" : kv == DType::BF16 ? "bf16"
                                                                                        : "fp32";
}

std::vector<LayerCache> make_layer_caches(const ModelConfig& cfg, DType kv_dtype) {
  std::vector<LayerCache> caches(static_cast<size_t>(cfg.num_layers));
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    LayerCache& c = caches[size_t(l)];
    // KV rows carry RoPE on their trailing rope_dim values (kept bf16 in the fp8 layout).
    c.window = RingStore(kv_dtype, cfg.head_dim, cfg.sliding_window - 1, cfg.rope_dim);
    const AttnKind k = cfg.attn[size_t(l)];
    if (k == AttnKind::Sliding) continue;
    if (k == AttnKind::Shared) {  // V4.1: only kv sources hold entries, and the keys with them
      if (!cfg.shared.is_kv_source(l)) continue;
      c.comp = compressor_state(cfg.compress_rate(l), cfg.head_dim, false);
      c.entries.rows = KvStore(kv_dtype, cfg.head_dim, cfg.rope_dim);
      c.idx_keys.rows = KvStore(kv_dtype, cfg.index_head_dim);
      continue;
    }
    c.comp = compressor_state(cfg.compress_rate(l), cfg.head_dim, k == AttnKind::CSA);
    c.entries.rows = KvStore(kv_dtype, cfg.head_dim, cfg.rope_dim);
    if (k == AttnKind::CSA) {
      c.idx_comp = compressor_state(cfg.csa_rate, cfg.index_head_dim, true);
      c.idx_keys.rows = KvStore(kv_dtype, cfg.index_head_dim);
    }
  }
  return caches;
}

CacheBytes cache_bytes_for(const ModelConfig& cfg, DType kv_dtype, int64_t n_tokens) {
  // F8_E4M3: FlashMLA's MODEL1 entries and fp8 indexer keys (model/cache/kv_fp8.h); F4_E2M1: V4.1's
  // trained form (model/cache/kv_v41.h).
  const int64_t window = KvRowFormat{kv_dtype, cfg.head_dim, cfg.rope_dim, true}.row_bytes();
  const int64_t entry = KvRowFormat{kv_dtype, cfg.head_dim, cfg.rope_dim}.row_bytes();
  const int64_t key = KvRowFormat{kv_dtype, cfg.index_head_dim}.row_bytes();
  CacheBytes b;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    b.window += std::min(n_tokens, cfg.sliding_window - 1) * window;
    const AttnKind k = cfg.attn[size_t(l)];
    if (k == AttnKind::Sliding) continue;
    const int64_t n = n_tokens / cfg.compress_rate(l);
    if (k == AttnKind::Shared) {  // one store per kv source, read by the layers after it
      if (!cfg.shared.is_kv_source(l)) continue;
      b.entries += n * (entry + 4);
      b.index_keys += n * (key + 4);
      continue;
    }
    b.entries += n * (entry + 4);  // + the global index
    if (k == AttnKind::CSA) b.index_keys += n_tokens / cfg.csa_rate * (key + 4);
  }
  return b;
}

namespace {
// Rows of a sequence's store that one rank holds: all of them at cp = 1; under cp > 1 its share
// (prefill steps split the positions evenly, decode places entries round robin), with 1/8 and
// 64 rows of slack for the uneven ends of the steps' pieces (Engine::reserve's slack).
int64_t rows_share(int64_t rows, int64_t parts) {
  return parts == 1 ? rows : rows / parts + rows / (8 * parts) + 64;
}
// Rows of layer l's stores for n_tokens positions: entries, and indexer keys where it has them.
int64_t entry_rows(const ModelConfig& cfg, int64_t l, int64_t n) { return n / cfg.compress_rate(l); }
int64_t key_rows(const ModelConfig& cfg, int64_t l, int64_t n) {
  return n / (cfg.v41() ? cfg.compress_rate(l) : cfg.csa_rate);
}
}  // namespace

int64_t sequence_bytes(const ModelConfig& cfg, DType kv_dtype, int64_t n_tokens, int64_t parts) {
  const int64_t window = KvRowFormat{kv_dtype, cfg.head_dim, cfg.rope_dim, true}.row_bytes();
  // Store rows as cache_bytes_for counts them (+ 4 bytes of global index each).
  const int64_t entry = KvRowFormat{kv_dtype, cfg.head_dim, cfg.rope_dim}.row_bytes() + 4;
  const int64_t key = KvRowFormat{kv_dtype, cfg.index_head_dim}.row_bytes() + 4;
  // The window rings at full size, whatever they hold yet, on every rank.
  int64_t bytes = cfg.num_layers * (cfg.sliding_window - 1) * window;
  const std::vector<LayerCache> fresh = make_layer_caches(cfg, kv_dtype);
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const LayerCache& c = fresh[size_t(l)];
    for (const CompressorState* s : {&c.comp, &c.idx_comp})
      bytes += int64_t(s->kv.size() + s->gate.size()) * 4;
    if (c.entries.rows.width() == 0) continue;  // no store in this layer
    bytes += rows_share(entry_rows(cfg, l, n_tokens), parts) * entry;
    if (c.idx_keys.rows.width() > 0) bytes += rows_share(key_rows(cfg, l, n_tokens), parts) * key;
  }
  return bytes;
}

void reserve_sequence(std::vector<LayerCache>& caches, const ModelConfig& cfg, int64_t n_tokens,
                      int64_t parts) {
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    LayerCache& c = caches[size_t(l)];
    if (c.entries.rows.width() == 0) continue;  // no store in this layer
    c.entries.reserve(rows_share(entry_rows(cfg, l, n_tokens), parts));
    if (c.idx_keys.rows.width() > 0) c.idx_keys.reserve(rows_share(key_rows(cfg, l, n_tokens), parts));
  }
}

double trained_cache_bytes_per_token(const ModelConfig& cfg) {
  const double entry = double(cfg.head_dim) / 2 + double(cfg.head_dim) / 16;
  const double key = double(cfg.index_head_dim) / 2 + double(cfg.index_head_dim) / 32;
  double b = 0;
  for (int64_t l : cfg.shared.kv_sources) b += (entry + key) / double(cfg.compress_rate(l));
  return b;
}

}  // namespace modelone
