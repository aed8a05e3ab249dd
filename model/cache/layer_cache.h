// Per-layer decoding state of one sequence on one rank: the sliding-window ring of raw KV, the
// compressors' raw projection rows of the windows still needed, and the compressed entries and
// (CSA) indexer keys this rank holds, each tagged with its global window index. Under context
// parallelism a rank holds only some entries (those it made, or was given in decode), and its
// window / compressor state is current only on the rank that processed the newest position.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/cache/kv_store.h"
#include "model/kernels/linear.h"

namespace modelone {

// A compressor between calls: the raw projection rows (gate without position bias) of positions
// [first, first + n). These are exactly the rows the next window needs: the open window's rows,
// and for CSA also the previous window's (its first-half series joins the next window's pool).
// Holding raw rows means a neighbour's rows can rebuild the state at any global position.
struct CompressorState {
  int64_t rate = 0;      // tokens per window (m)
  int64_t width = 0;     // entry width (head_dim or index_head_dim)
  bool overlap = false;  // CSA: projections are 2 * width wide, windows overlap by one
  int64_t first = 0, n = 0;
  std::vector<float> kv, gate;  // [capacity(), proj_width()]

  int64_t proj_width() const { return overlap ? 2 * width : width; }
  int64_t capacity() const { return overlap ? 2 * rate : rate; }
  int64_t end() const { return first + n; }
  // First position whose rows a state standing at position p holds.
  int64_t lookback_start(int64_t p) const {
    const int64_t w = p / rate;  // the open window
    return overlap ? std::max<int64_t>(0, (w - 1) * rate) : w * rate;
  }
};

// An empty compressor state (at position 0) with room for its rows.
CompressorState compressor_state(int64_t rate, int64_t width, bool overlap);

// Compressed rows this rank holds, with the global window index of each (increasing).
struct EntryStore {
  KvStore rows;
  std::vector<int32_t> index;
  int64_t size() const { return rows.rows(); }
  void append(const float* r, int64_t n, int64_t first_index);
  void append(const float* r, int64_t n, const int32_t* idx);
  void clear() { rows.clear(); index.clear(); }
  void reserve(int64_t n) {
    rows.reserve(n);
    index.reserve(size_t(n));
  }
  size_t bytes() const { return rows.bytes() + index.size() * sizeof(int32_t); }
};

struct LayerCache {
  int64_t n_tokens = 0;  // the position the window ring and compressor states stand at
  RingStore window;      // last sliding_window - 1 KV rows [Dh] before n_tokens
  CompressorState comp;
  EntryStore entries;    // compressed KV entries [Dh], roped
  CompressorState idx_comp;
  EntryStore idx_keys;   // CSA indexer keys [index_head_dim], roped

  size_t bytes() const { return window.bytes() + entries.bytes() + idx_keys.bytes(); }
  // Restart the window and compressor states at position p (entries are kept). The caller
  // then feeds the rows before p that the states need (see CompressorState::lookback_start).
  void restart_at(int64_t p);
};

// The cache storage a --kv-cache choice gives for a model: fp32, bf16, fp8 (MODEL1), fp4 (V4.1's
// trained form, V4.1 only), or auto: fp4 for V4.1 with its fake quantization on, where it holds
// the model's own numbers exactly; otherwise the compute's dtype (bf16 compute rounds every key
// and value to bf16 before its products, so a bf16 cache gives the same numbers in half the
// bytes). fp4 for V4 is an error.
enum class KvCacheChoice : uint8_t { Auto, F32, BF16, FP8, FP4 };
DType kv_cache_dtype(KvCacheChoice choice, const ModelConfig& cfg, Compute compute);
const char* kv_cache_name(DType kv);  // "fp32", "bf16", "fp8" or "fp4": what auto chose

// Fresh caches for every layer; kv_dtype is the cache storage type (F32 or BF16).
std::vector<LayerCache> make_layer_caches(const ModelConfig& cfg, DType kv_dtype);

// Bytes one sequence of n_tokens needs across all layers, split by kind (for inspect). Under
// context parallelism the entries divide over the cp ranks; the window stays with the newest
// tokens on one rank.
struct CacheBytes {
  int64_t window = 0, entries = 0, index_keys = 0;
  int64_t total() const { return window + entries + index_keys; }
};
CacheBytes cache_bytes_for(const ModelConfig& cfg, DType kv_dtype, int64_t n_tokens);
// What one sequence of up to n_tokens positions holds on one rank, as allocated: the window
// rings at full size, the compressors' rows, and the stores of n_tokens (at cp = 1; split over
// `parts` cp ranks, the rank's share with slack). The batch scheduler reserves this much per
// sequence before admitting it (dist/batch_scheduler.h).
int64_t sequence_bytes(const ModelConfig& cfg, DType kv_dtype, int64_t n_tokens, int64_t parts = 1);
// Room in the stores of caches (one sequence's, on one of `parts` cp ranks) for n_tokens
// positions, so they do not grow past what sequence_bytes counted.
void reserve_sequence(std::vector<LayerCache>& caches, const ModelConfig& cfg, int64_t n_tokens,
                      int64_t parts = 1);

// V4.1: compressed-cache bytes per token in the form its fake quantization trained for, FP4
// entries (e4m3 scale per 16) and FP4 indexer keys (ue8m0 scale per 32), over every kv source
// (V4.1-Flash: 2.5 x (288 + 68) = 890 B).
double trained_cache_bytes_per_token(const ModelConfig& cfg);

}  // namespace modelone
