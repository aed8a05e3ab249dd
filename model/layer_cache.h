// Per-layer decoding state of one sequence: the sliding-window ring of raw KV, the compressors'
// partial windows and overlap halves, the compressed entries and (CSA) the indexer's keys.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/kv_store.h"

namespace modelone {

// A compressor between calls: rows of the window not yet closed, and (CSA) the first-half series
// of the last closed window, which the next window pools too.
struct CompressorState {
  int64_t rate = 0;      // tokens per window (m)
  int64_t width = 0;     // entry width (head_dim or index_head_dim)
  bool overlap = false;  // CSA: projections are 2 * width wide, windows overlap by one
  int64_t n_pending = 0;
  std::vector<float> pending_kv, pending_gate;  // [rate, proj_width], gate without position bias
  bool has_prev = false;
  std::vector<float> prev_kv, prev_gate;        // [rate, width], gate with position bias
  int64_t proj_width() const { return overlap ? 2 * width : width; }
};

struct LayerCache {
  int64_t n_tokens = 0;  // positions consumed so far
  RingStore window;      // last sliding_window - 1 KV rows [Dh]
  CompressorState comp;
  KvStore entries;       // compressed KV entries [Dh], roped
  CompressorState idx_comp;
  KvStore idx_keys;      // CSA indexer keys [index_head_dim], roped

  size_t bytes() const { return window.bytes() + entries.bytes() + idx_keys.bytes(); }
};

// Fresh caches for every layer; kv_dtype is the cache storage type (F32 or BF16).
std::vector<LayerCache> make_layer_caches(const ModelConfig& cfg, DType kv_dtype);

// Bytes of cache one sequence of n_tokens needs across all layers (for inspect).
int64_t cache_bytes_for(const ModelConfig& cfg, DType kv_dtype, int64_t n_tokens);

}  // namespace modelone
