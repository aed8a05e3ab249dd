#include "model/blocks/indexer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "model/kernels/bf16_decode.h"
#include "model/kernels/fake_quant.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"
#include "model/kernels/omp_threads.h"
#include "model/kernels/onednn_matmul.h"

namespace modelone {

void indexer_inputs_bf16(const float* keys, int64_t n_keys, const float* q, int64_t T, int64_t nI,
                         int64_t Di, std::vector<uint16_t>* kb, std::vector<uint16_t>* qb) {
  kb->assign(size_t(pad64(n_keys) * Di), 0);
  rows_to_bf16(keys, n_keys, Di, Di, kb->data());
  qb->resize(size_t(T * nI * Di));
  rows_to_bf16(q, T, nI * Di, nI * Di, qb->data());
}
void indexer_queries(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope,
                     const float* q_lat, const float* h, int64_t T, const int64_t* pos,
                     IndexerQueries* out) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  out->q.resize(size_t(T * nI * Di));
  out->w.resize(size_t(T * nI));
  linear(q_lat, T, cfg.q_lora_rank, w.idx_wq_b, 0, nI * Di, out->q.data(), nI * Di);
  for (int64_t t = 0; t < T; ++t) {
    rope.apply(out->q.data() + t * nI * Di, nI, Di, pos[t]);
    // V4.1: the queries in FP4 (ue8m0 scales, blocks of 32 within each head).
    if (cfg.fake_quant) fake_quant_fp4_ue8m0(out->q.data() + t * nI * Di, nI * Di, kIndexQuantBlock);
  }
  linear(h, T, cfg.hidden_size, w.idx_weights_proj, 0, nI, out->w.data(), nI);
  const float ws = 1.f / std::sqrt(float(nI));
  for (auto& v : out->w) v *= ws;
}

namespace {
// score[s] += sum_h max(l[h, s], 0) * scale * w[h] for logits l[nI, n] (row stride ld).
void accumulate_scores(const float* l, int64_t ld, int64_t nI, int64_t n, const float* w,
                       float scale, float* score) {
  for (int64_t hh = 0; hh < nI; ++hh) {
    const float* lr = l + hh * ld;
    for (int64_t s = 0; s < n; ++s) score[s] += std::max(lr[s], 0.f) * scale * w[hh];
  }
}
}  // namespace

namespace {
// One query's selection over n visible keys: logits[nI, ld] from the bf16 keys kb (ld =
// pad64(n)) or the fp32 keys, then the weighted ReLU sum and the top k.
void select_one(const ModelConfig& cfg, const float* q, const uint16_t* qb, const float* w,
                const float* keys, const uint16_t* kb, int64_t n, int32_t* top,
                std::vector<float>& logits, std::vector<float>& score) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  const float scale = 1.f / std::sqrt(float(Di));
  const int64_t ld = kb ? pad64(n) : n;
  logits.resize(size_t(nI * ld));
  score.assign(size_t(n), 0.f);
  if (kb)
    matmul_bf16_nt(nI, ld, Di, qb, Di, kb, Di, logits.data(), ld, false);
  else
    sgemm_nt(nI, n, Di, q, Di, keys, Di, logits.data(), n);
  accumulate_scores(logits.data(), ld, nI, n, w, scale, score.data());
  top_k(score.data(), n, std::min(cfg.index_topk, n), top);
}

// The T queries' selections over the threads.
void select_rows(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T, const int64_t* pos,
                 const float* keys, const uint16_t* kb, const uint16_t* qb, int64_t n_keys,
                 int32_t* top, int32_t* count, int64_t r0) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim, K = cfg.index_topk;
  const float* iqq = iq.q.data() + r0 * nI * Di;
  const float* iqw = iq.w.data() + r0 * nI;
  parallel_dynamic(T, threads_here(), [&](int64_t t) {
    static thread_local std::vector<float> logits, score;  // per thread, kept between calls
    const int64_t n = std::min(n_keys, (pos[t] + 1) / cfg.csa_rate);  // closed windows
    count[t] = int32_t(std::min(K, n));
    if (n == 0) return;
    select_one(cfg, iqq + t * nI * Di, kb ? qb + t * nI * Di : nullptr, iqw + t * nI, keys, kb,
               n, top + t * K, logits, score);
  });
}
}  // namespace

void indexer_select(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T,
                    const int64_t* pos, const float* keys, int64_t n_keys, int32_t* top,
                    int32_t* count, int64_t r0) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  if (compute_mode() != Compute::BF16) {
    select_rows(cfg, iq, T, pos, keys, nullptr, nullptr, n_keys, top, count, r0);
    return;
  }
  // bf16 path: queries and keys rounded once.
  std::vector<uint16_t> kb, qb;
  indexer_inputs_bf16(keys, n_keys, iq.q.data() + r0 * nI * Di, T, nI, Di, &kb, &qb);
  select_rows(cfg, iq, T, pos, nullptr, kb.data(), qb.data(), n_keys, top, count, r0);
}

void indexer_select_bf16(const ModelConfig& cfg, const IndexerQueries& iq, int64_t T,
                         const int64_t* pos, const uint16_t* kb, int64_t n_keys, int32_t* top,
                         int32_t* count, int64_t r0) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  static thread_local std::vector<uint16_t> qb;  // kept: no allocation per decode call
  qb.resize(size_t(T * nI * Di));
  rows_to_bf16(iq.q.data() + r0 * nI * Di, T, nI * Di, nI * Di, qb.data());
  select_rows(cfg, iq, T, pos, nullptr, kb, qb.data(), n_keys, top, count, r0);
}

void indexer_candidates(const ModelConfig& cfg, const float* q, const float* w, int64_t pos,
                        const EntryStore& keys, std::vector<Candidate>* out) {
  const int64_t nI = cfg.index_n_heads, Di = cfg.index_head_dim;
  const float scale = 1.f / std::sqrt(float(Di));
  // Visible keys: a prefix of the store, whose global indices increase.
  const int64_t limit = (pos + 1) / cfg.csa_rate;
  const int64_t n = std::lower_bound(keys.index.begin(), keys.index.end(), limit) - keys.index.begin();
  if (n == 0) return;
  static thread_local std::vector<float> score;  // kept: no page faults per call
  score.assign(size_t(n), 0.f);
  // Tiles of keys widened into per-thread scratch: the widened copy stays in cache and no
  // buffer grows with the context. On the bf16 path the keys are fed as bf16 (stored bf16 as is,
  // fp8 decoded exactly) and the tile rounded up to 64 rows, so the matmul sees few shapes.
  constexpr int64_t kTile = 1024;
  const int64_t n_tiles = (n + kTile - 1) / kTile;
  float* sc = score.data();
  const bool bf16 = compute_mode() == Compute::BF16;
  static thread_local std::vector<uint16_t> qbuf;
  qbuf.resize(size_t(nI * Di));
  if (bf16) rows_to_bf16(q, 1, nI * Di, nI * Di, qbuf.data());
  const uint16_t* qb = qbuf.data();
  parallel_for(n_tiles, n_tiles > 1 ? threads_here() : 1, [&](int64_t b) {
    static thread_local std::vector<float> kt, logits;
    static thread_local std::vector<uint16_t> kb;
    logits.resize(size_t(nI * kTile));
    const int64_t s0 = b * kTile, ns = std::min(kTile, n - s0);
    if (bf16) {
      const int64_t np = pad64(ns);
      const uint16_t* k = keys.rows.view_bf16(s0, ns, np, kb);
      matmul_bf16_nt(nI, np, Di, qb, Di, k, Di, logits.data(), np, false);
      accumulate_scores(logits.data(), np, nI, ns, w, scale, sc + s0);
    } else {
      const float* kf = keys.rows.view(s0, ns, kt);
      sgemm_nt(nI, ns, Di, q, Di, kf, Di, logits.data(), ns);
      accumulate_scores(logits.data(), ns, nI, ns, w, scale, sc + s0);
    }
  });
  const int64_t k = std::min(cfg.index_topk, n);
  static thread_local std::vector<int32_t> top;
  top.resize(size_t(k));
  top_k(sc, n, k, top.data());  // local order = global order, so ties go to the lower index
  for (int64_t i = 0; i < k; ++i) out->push_back({sc[top[size_t(i)]], keys.index[size_t(top[size_t(i)])]});
}

int64_t merge_candidates(std::vector<Candidate> c, int64_t k, int32_t* top) {
  auto better = [](const Candidate& a, const Candidate& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  };
  k = std::min<int64_t>(k, int64_t(c.size()));
  std::partial_sort(c.begin(), c.begin() + k, c.end(), better);
  for (int64_t i = 0; i < k; ++i) top[i] = c[size_t(i)].index;
  return k;
}

}  // namespace modelone
