// Engine::synthetic_context: caches filled as if a long prompt had been prefilled, so decode at
// a 1M-token context can be measured without a 1M-token prefill. Every row is a function of
// (seed, layer, kind, global index) only, so cp = 1 and cp = C hold the same context, split the
// way a one-step prefill in the configured layout would split it.
#include <cmath>

#include "dist/engine.h"

namespace modelone {

namespace {

uint64_t mix(uint64_t z) {  // splitmix64's finaliser
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// rows[n, width]: row i is the row of global index idx[i] (unit-variance uniform values).
void fill_rows(uint64_t seed, int64_t layer, int kind, const std::vector<int64_t>& idx,
               int64_t width, std::vector<float>* rows) {
  rows->resize(idx.size() * size_t(width));
  const uint64_t base = mix(seed ^ mix(uint64_t(layer) * 8 + uint64_t(kind)));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(idx.size()); ++i) {
    const uint64_t r = mix(base ^ uint64_t(idx[size_t(i)]));
    float* dst = rows->data() + i * width;
    for (int64_t c = 0; c < width; ++c) {
      const uint64_t u = mix(r + uint64_t(c));
      dst[c] = float((double(u >> 11) * 0x1.0p-53 * 2.0 - 1.0) * std::sqrt(3.0));
    }
  }
}

// The compressor state a rank standing at position n holds: raw rows [lookback(n), n).
void fill_state(CompressorState& st, uint64_t seed, int64_t layer, int kind, int64_t n) {
  st.first = st.lookback_start(n);
  st.n = n - st.first;
  std::vector<int64_t> idx;
  for (int64_t p = st.first; p < n; ++p) idx.push_back(p);
  std::vector<float> kv, gate;
  fill_rows(seed, layer, kind, idx, st.proj_width(), &kv);
  fill_rows(seed, layer, kind + 1, idx, st.proj_width(), &gate);
  std::copy(kv.begin(), kv.end(), st.kv.begin());
  std::copy(gate.begin(), gate.end(), st.gate.begin());
}

}  // namespace

void Engine::synthetic_context(int64_t n, uint64_t seed) {
  reset();
  const int cp = grid_.cp_comm.size(), me = grid_.cp_comm.rank();
  const StepLayout L = prefill_layout(0, n, cp, opt_.cp_layout);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) ids[size_t(t)] = int32_t(mix(seed + uint64_t(t)) % uint64_t(cfg_.vocab_size));
  append_tokens(ids.data(), n);
  reserve(n + 65536);  // decode steps after it never move the stores
  const int tail = L.tail();
  const int64_t mine_end = L.segs[size_t(me)].empty() ? 0 : L.segs[size_t(me)].back().pos + L.segs[size_t(me)].back().n;
  std::vector<float> rows;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    LayerCache& c = caches_[size_t(l)];
    const AttnKind kind = cfg_.attn[size_t(l)];
    // V4.1: only kv sources hold entries (and the indexer keys with them).
    const bool stores = kind == AttnKind::CSA || kind == AttnKind::HCA ||
                        (kind == AttnKind::Shared && cfg_.shared.is_kv_source(l));
    const bool keys = kind == AttnKind::CSA || (kind == AttnKind::Shared && stores);
    if (stores) {
      // Window g closes at (g + 1) * m - 1; that position's rank made the entry.
      const int64_t m = cfg_.compress_rate(l);
      std::vector<int64_t> mine;
      for (int64_t g = 0; g < n / m; ++g)
        if (L.owner((g + 1) * m - 1) == me) mine.push_back(g);
      for (size_t a = 0; a < mine.size(); a += 4096) {  // bounded scratch
        std::vector<int64_t> part(mine.begin() + int64_t(a), mine.begin() + int64_t(std::min(mine.size(), a + 4096)));
        std::vector<int32_t> idx(part.begin(), part.end());
        fill_rows(seed, l, 1, part, cfg_.head_dim, &rows);
        c.entries.append(rows.data(), int64_t(part.size()), idx.data());
        if (keys) {
          fill_rows(seed, l, 2, part, cfg_.index_head_dim, &rows);
          c.idx_keys.append(rows.data(), int64_t(part.size()), idx.data());
        }
      }
    }
    if (me != tail) {
      c.n_tokens = mine_end;  // never continued: a later segment here restarts from a halo
      continue;
    }
    // The tail keeps the window and the compressors' open rows.
    c.restart_at(n);
    std::vector<int64_t> wpos;
    for (int64_t p = std::max<int64_t>(0, n - (cfg_.sliding_window - 1)); p < n; ++p) wpos.push_back(p);
    fill_rows(seed, l, 3, wpos, cfg_.head_dim, &rows);
    c.window.append(rows.data(), int64_t(wpos.size()));
    if (stores) fill_state(c.comp, seed, l, 4, n);
    if (kind == AttnKind::CSA) fill_state(c.idx_comp, seed, l, 6, n);
  }
  cp_.assume_step(L);
}

}  // namespace modelone
