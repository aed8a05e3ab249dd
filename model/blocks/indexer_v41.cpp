#include "model/blocks/indexer_v41.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/kernels/bf16_decode.h"
#include "model/base/check.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"
#include "model/kernels/omp_threads.h"
#include "model/kernels/onednn_matmul.h"

namespace modelone {

namespace {

// score[n] of one query (q or, on the bf16 path, qb) against n key rows: k32 [n, Di] fp32, or
// k16 [pad64(n), Di] bf16 (rows past n read but their scores dropped).
void score_rows(const ModelConfig& cfg, const float* q, const uint16_t* qb, const float* w,
                const float* k32, const uint16_t* k16, int64_t n, float* score) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  const float scale = 1.f / std::sqrt(float(Di));
  static thread_local std::vector<float> logits;
  const int64_t ld = k16 ? pad64(n) : n;
  logits.resize(size_t(nI * ld));
  if (k16) matmul_bf16_nt(nI, ld, Di, qb, Di, k16, Di, logits.data(), ld, false);
  else sgemm_nt(nI, n, Di, q, Di, k32, Di, logits.data(), ld);
  std::fill(score, score + n, 0.f);
  for (int64_t h = 0; h < nI; ++h) {
    const float* l = logits.data() + h * ld;
    for (int64_t s = 0; s < n; ++s) score[s] += std::max(l[s], 0.f) * scale * w[h];
  }
}

// Best score per block of `bs` entries over score[n] (entries 0 .. n - 1 of global ids).
std::vector<float> block_maxima(const float* score, int64_t n, int64_t bs) {
  std::vector<float> b(static_cast<size_t>((n + bs - 1) / bs), -INFINITY);
  for (int64_t s = 0; s < n; ++s) b[size_t(s / bs)] = std::max(b[size_t(s / bs)], score[s]);
  return b;
}

// The top min(k, n) of score[n] as (score, gidx[i]) candidates, ties to the lower i.
void local_top(const float* score, int64_t n, int64_t k, const int32_t* gidx,
               std::vector<Candidate>* out) {
  k = std::min(k, n);
  static thread_local std::vector<int32_t> top;
  top.resize(size_t(k));
  top_k(score, n, k, top.data());
  for (int64_t i = 0; i < k; ++i) out->push_back({score[top[size_t(i)]], gidx[top[size_t(i)]]});
}

}  // namespace

int64_t pick_blocks(const float* bscore, int64_t nb_all, int64_t newest, int64_t k, int32_t* ids) {
  std::vector<int32_t> cand;
  for (int64_t b = 0; b < nb_all; ++b)
    if (b == newest || bscore[b] > -INFINITY) cand.push_back(int32_t(b));
  auto better = [&](int32_t a, int32_t b) {
    if ((a == newest) != (b == newest)) return a == newest;  // pinned
    return bscore[a] > bscore[b] || (bscore[a] == bscore[b] && a < b);
  };
  k = std::min<int64_t>(k, int64_t(cand.size()));
  std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), better);
  std::sort(cand.begin(), cand.begin() + k);
  std::copy(cand.begin(), cand.begin() + k, ids);
  return k;
}

void shared_select(const ModelConfig& cfg, int64_t layer, const IndexerQueries& iq, int64_t T,
                   const int64_t* pos, const float* keys, int64_t n_keys, BlockPicks* blocks,
                   int32_t* top, int32_t* count, int64_t r0) {
  const SharedAttn& sa = cfg.shared;
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim, K = cfg.index_topk;
  const int64_t r = sa.ratio[size_t(layer)], bs = sa.candidate_block_size;
  const bool source = layer == sa.candidate_source, masked = sa.uses_candidates(layer);
  if (source) {
    blocks->per = sa.candidate_topk_blocks;
    blocks->ids.assign(size_t(T * blocks->per), -1);
    blocks->count.assign(size_t(T), 0);
  }
  if (masked) MO_CHECK(int64_t(blocks->count.size()) == T, "layer ", layer, ": no candidate blocks");
  // bf16 path: queries and keys rounded once (keys zero-padded to 64 rows).
  const bool bf16 = compute_mode() == Compute::BF16;
  std::vector<uint16_t> kb, qb;
  const float* iqq = iq.q.data() + r0 * nI * Di;
  const float* iqw = iq.w.data() + r0 * nI;
  if (bf16) indexer_inputs_bf16(keys, n_keys, iqq, T, nI, Di, &kb, &qb);
  parallel_dynamic(T, threads_here(), [&](int64_t t) {
    static thread_local std::vector<float> score, tile;  // per thread, kept between calls
    static thread_local std::vector<uint16_t> tile16;
    static thread_local std::vector<int32_t> gidx;
    {
      const int64_t n = std::min(n_keys, (pos[t] + 1) / r);  // visible entries
      const float* q = iqq + t * nI * Di;
      const uint16_t* qt = bf16 ? qb.data() + t * nI * Di : nullptr;
      const float* w = iqw + t * nI;
      std::vector<Candidate> picks;
      if (masked) {  // only the entries of this query's candidate blocks
        gidx.clear();
        const int32_t* ids = blocks->ids.data() + t * blocks->per;
        for (int32_t i = 0; i < blocks->count[size_t(t)]; ++i)
          for (int64_t s = int64_t(ids[i]) * bs; s < std::min(n, (int64_t(ids[i]) + 1) * bs); ++s)
            gidx.push_back(int32_t(s));
        const int64_t m = int64_t(gidx.size());
        score.resize(size_t(m));
        if (bf16) {
          tile16.assign(size_t(pad64(m) * Di), 0);
          for (int64_t i = 0; i < m; ++i)
            std::copy_n(kb.data() + int64_t(gidx[size_t(i)]) * Di, Di, tile16.data() + i * Di);
        } else {
          tile.resize(size_t(m * Di));
          for (int64_t i = 0; i < m; ++i)
            std::copy_n(keys + int64_t(gidx[size_t(i)]) * Di, Di, tile.data() + i * Di);
        }
        score_rows(cfg, q, qt, w, tile.data(), bf16 ? tile16.data() : nullptr, m, score.data());
        local_top(score.data(), m, K, gidx.data(), &picks);
      } else {
        score.resize(size_t(n));
        score_rows(cfg, q, qt, w, keys, bf16 ? kb.data() : nullptr, n, score.data());
        gidx.resize(size_t(n));
        std::iota(gidx.begin(), gidx.end(), 0);
        local_top(score.data(), n, K, gidx.data(), &picks);
        if (source) {
          const std::vector<float> b = block_maxima(score.data(), n, bs);
          blocks->count[size_t(t)] = int32_t(pick_blocks(
              b.data(), int64_t(b.size()), n > 0 ? (n - 1) / bs : -1, blocks->per,
              blocks->ids.data() + t * blocks->per));
        }
      }
      count[t] = int32_t(picks.size());
      for (size_t i = 0; i < picks.size(); ++i) top[t * K + int64_t(i)] = picks[i].index;
    }
  });
}

void shared_candidates(const ModelConfig& cfg, int64_t layer, const float* q, const float* w,
                       int64_t pos, const EntryStore& keys, const std::vector<int32_t>* blocks,
                       std::vector<Candidate>* out, std::vector<Candidate>* block_out) {
  const SharedAttn& sa = cfg.shared;
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim, K = cfg.index_topk;
  const int64_t r = sa.ratio[size_t(layer)], bs = sa.candidate_block_size;
  const bool masked = sa.uses_candidates(layer);
  // Visible local rows: a prefix of the store (global indices increase); masked: those of it in
  // the candidate blocks (a list), else the prefix itself (read in place).
  const int64_t limit = (pos + 1) / r;
  const int64_t n_vis =
      std::lower_bound(keys.index.begin(), keys.index.end(), limit) - keys.index.begin();
  std::vector<int32_t> rows, gidx_list;
  if (masked)
    for (int64_t i = 0; i < n_vis; ++i)
      if (std::binary_search(blocks->begin(), blocks->end(), int32_t(keys.index[size_t(i)] / bs))) {
        rows.push_back(int32_t(i));
        gidx_list.push_back(keys.index[size_t(i)]);
      }
  const int64_t n = masked ? int64_t(rows.size()) : n_vis;
  const int32_t* gidx = masked ? gidx_list.data() : keys.index.data();
  if (n == 0) return;
  // Tiles of keys decoded into per-thread scratch (bf16 stores read in place): no buffer grows
  // with the context.
  static thread_local std::vector<float> score;
  score.resize(size_t(n));
  const bool bf16 = compute_mode() == Compute::BF16;
  std::vector<uint16_t> qb;
  if (bf16) {
    qb.resize(size_t(nI * Di));
    rows_to_bf16(q, 1, nI * Di, nI * Di, qb.data());
  }
  constexpr int64_t kTile = 1024;
  const int64_t n_tiles = (n + kTile - 1) / kTile;
  float* sc = score.data();
  parallel_for(n_tiles, n_tiles > 1 ? threads_here() : 1, [&](int64_t b) {
    static thread_local std::vector<float> kt;
    static thread_local std::vector<uint16_t> k16;
    const int64_t s0 = b * kTile, ns = std::min(kTile, n - s0);
    const float* k32 = nullptr;
    const uint16_t* kb = nullptr;
    if (bf16 && masked) {
      keys.rows.gather_bf16(rows.data() + s0, ns, pad64(ns), k16);
      kb = k16.data();
    } else if (bf16) {
      kb = keys.rows.view_bf16(s0, ns, pad64(ns), k16);
    } else if (masked) {
      kt.resize(size_t(ns * Di));
      keys.rows.gather(rows.data() + s0, ns, kt.data());
      k32 = kt.data();
    } else {
      k32 = keys.rows.view(s0, ns, kt);
    }
    score_rows(cfg, q, qb.data(), w, k32, kb, ns, sc + s0);
  });
  local_top(sc, n, K, gidx, out);
  if (!block_out || layer != sa.candidate_source) return;
  // Partial block maxima of the local entries (a block's entries may sit on several ranks).
  std::vector<Candidate> bm;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t blk = int32_t(gidx[i] / bs);
    if (bm.empty() || bm.back().index != blk) bm.push_back({sc[i], blk});
    else bm.back().score = std::max(bm.back().score, sc[i]);
  }
  const int64_t k = std::min<int64_t>(sa.candidate_topk_blocks, int64_t(bm.size()));
  std::partial_sort(bm.begin(), bm.begin() + k, bm.end(), [](const Candidate& a, const Candidate& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  });
  block_out->insert(block_out->end(), bm.begin(), bm.begin() + k);
}

std::vector<int32_t> merge_blocks(const ModelConfig& cfg, int64_t pos, int64_t ratio,
                                  const std::vector<Candidate>& all) {
  const SharedAttn& sa = cfg.shared;
  const int64_t n_vis = (pos + 1) / ratio, bs = sa.candidate_block_size;
  if (n_vis == 0) return {};
  std::vector<float> b(static_cast<size_t>((n_vis + bs - 1) / bs), -INFINITY);
  for (const Candidate& c : all)
    if (c.index >= 0) b[size_t(c.index)] = std::max(b[size_t(c.index)], c.score);
  std::vector<int32_t> ids(static_cast<size_t>(sa.candidate_topk_blocks));
  ids.resize(size_t(pick_blocks(b.data(), int64_t(b.size()), (n_vis - 1) / bs,
                                sa.candidate_topk_blocks, ids.data())));
  return ids;
}

}  // namespace modelone
