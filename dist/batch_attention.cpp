// CpAttention::forward_batch: the attention of a batch of sequences at cp = 1 (each rank serves
// its own sequences, SGLang's data-parallel attention). The projections (wkv, the compressors,
// wq_a, the indexer's, wq_b) and the output (wo_a, wo_b) are row-wise, so they run over every
// row of the step at once and read each weight once for the batch; the parts that read a
// sequence's caches (advance, tables, indexer top-k, attend) run per sequence on its rows.
// Under cp > 1 each sequence runs split over the group as alone (begin_batch .. end_batch).
#include <algorithm>
#include <cstring>

#include "comm/clock.h"
#include "dist/cp_attention.h"
#include "model/base/check.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

void CpAttention::forward_batch(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
                                const std::vector<BatchSeq>& seqs, float* out) {
  MO_CHECK(cp_.size() == 1, "a batch of sequences runs at cp = 1");
  const AttnKind kind = cfg_.attn[size_t(l)];
  const size_t S = seqs.size();
  std::vector<Segment> segs(S);
  std::vector<int64_t> pos;
  for (size_t i = 0; i < S; ++i) {
    segs[i] = seqs[i].seg;
    MO_CHECK(segs[i].row == int64_t(pos.size()), "batch rows out of order");
    for (int64_t k = 0; k < segs[i].n; ++k) pos.push_back(segs[i].pos + k);
  }
  const int64_t T = int64_t(pos.size());
  if (T == 0) return;
  CpTimers& timers = timers_[size_t(kind)];
  double& cpu = timers.compute_cpu;
  comm::timed(timers.project, cpu, [&] {
    attn_project_keys(cfg_, l, w, rope, h, T, pos.data(), kv_dtype_, &p_);
    attn_project_latent(cfg_, l, w, rope, h, T, &p_);
    p_.q.resize(size_t(T * cfg_.num_heads * cfg_.head_dim));
    attn_project_heads(cfg_, w, rope, p_.q_lat.data(), T, pos.data(), 0, cfg_.num_heads, p_.q.data());
    wins_.resize(S);
    // Each sequence's own caches and window: independent, so side by side over the threads.
    parallel_each(int64_t(S), [&](int64_t i) {
      attn_advance(cfg_, l, w, rope, p_, segs[size_t(i)], (*seqs[size_t(i)].caches)[size_t(l)], &wins_[size_t(i)]);
    });
  });

  // Each sequence's tables (cp = 1: its own stores) and picks, at its rows of s_.picks.
  const int64_t K = cfg_.index_topk;
  std::vector<EntryTable> ents(S);
  batch_dense_.resize(2 * S);
  if (batch_blocks_.size() < S) batch_blocks_.resize(S);
  s_.picks.resize(size_t(T * K));
  s_.n_picks.resize(size_t(T));
  const bool shared = kind == AttnKind::Shared;
  const bool scores = kind == AttnKind::CSA || (shared && cfg_.shared.is_index_source(l));
  // Per sequence (its own stores, scratch and rows of the picks). A decode step's sequences have a
  // query or a few each, too few to split inside: they run side by side over the threads, and
  // decode only the entries their queries picked (index_topk each, not the whole store). A step
  // holding a prompt chunk runs them in turn, each split over its queries inside.
  const bool few_queries = std::all_of(segs.begin(), segs.end(), [](const Segment& g) { return g.n <= 4; });
  const bool picked = few_queries && (kind == AttnKind::CSA || shared);
  // The bf16 path reads a CSA layer's bf16 (or fp8) index keys as they are stored.
  const bool keys_bf16 = few_queries && kind == AttnKind::CSA && compute_mode() == Compute::BF16;
  if (picked) batch_picks_.resize(size_t(T * K));
  if (batch_keys_bf16_.size() < S) batch_keys_bf16_.resize(S);
  const int64_t n_select = kind == AttnKind::Sliding ? 0 : int64_t(S);
  auto select = [&](int64_t si) {
    const size_t i = size_t(si);
    const std::vector<LayerCache>& caches = *seqs[i].caches;
    // V4.1: a Shared layer reads its kv source's stores (the layer's own when it is one).
    const LayerCache& c = caches[size_t(shared ? cfg_.shared.kv_of[size_t(l)] : l)];
    const Segment& s = segs[i];
    int32_t* top = s_.picks.data() + s.row * K;
    int32_t* count = s_.n_picks.data() + s.row;
    if (keys_bf16) {
      const int64_t nk = c.idx_keys.size();
      const uint16_t* kb = c.idx_keys.rows.view_bf16(0, nk, pad64(nk), batch_keys_bf16_[i]);
      indexer_select_bf16(cfg_, p_.iq, s.n, pos.data() + s.row, kb, nk, top, count, s.row);
    } else if (scores) {
      const EntryTable keys = table(c.idx_keys, batch_dense_[2 * i + 1], "cp.index_keys");
      if (shared)
        shared_select(cfg_, l, p_.iq, s.n, pos.data() + s.row, keys.rows, keys.n, &batch_blocks_[i],
                      top, count, s.row);
      else
        indexer_select(cfg_, p_.iq, s.n, pos.data() + s.row, keys.rows, keys.n, top, count, s.row);
    }
    ents[i] = picked ? picked_entries(c.entries, s, batch_dense_[2 * i])
                     : table(c.entries, batch_dense_[2 * i], "cp.entries");
  };
  comm::timed(timers.indexer, cpu, [&] {
    if (few_queries) return parallel_each(n_select, select);
    for (int64_t i = 0; i < n_select; ++i) select(i);
  });
  const std::vector<float> sink = w.attn_sink.to_f32();
  comm::timed(timers.attend, cpu, [&] {
    attn_attend(cfg_, l, p_, segs, wins_, ents, picked ? batch_picks_.data() : s_.picks.data(),
                s_.n_picks.data(), &part_);
    attn_merge(T, cfg_.num_heads, cfg_.head_dim, sink.data(), {&part_}, part_.o.data());
  });
  comm::timed(timers.output, cpu, [&] { attn_output(cfg_, w, rope, part_.o.data(), T, pos.data(), out); });
}

// The entries the segment's queries picked (s_.picks rows [s.row, s.row + s.n)), decoded in pick
// order into dense [picks, width], and the picks renumbered into it in batch_picks_: the same
// rows and order attn_attend would read from the whole store's table. s_.picks keeps the store's
// numbers (a V4.1 layer after it may reuse them).
EntryTable CpAttention::picked_entries(const EntryStore& store, const Segment& s, std::vector<float>& dense) {
  const int64_t K = cfg_.index_topk, W = store.rows.width();
  int64_t n = 0;
  for (int64_t t = s.row; t < s.row + s.n; ++t) n += s_.n_picks[size_t(t)];
  dense.resize(size_t(n * W));
  int64_t j = 0;
  for (int64_t t = s.row; t < s.row + s.n; ++t) {
    const int64_t m = s_.n_picks[size_t(t)];
    store.rows.gather(s_.picks.data() + t * K, m, dense.data() + j * W);
    for (int64_t i = 0; i < m; ++i) batch_picks_[size_t(t * K + i)] = int32_t(j + i);
    j += m;
  }
  return {dense.data(), n};
}

// Swaps a batch item's step state into the one the single-sequence code reads, and back on
// leaving the scope (an exception included).
struct CpAttention::SwapIn {
  SeqStep &a, &b;
  SwapIn(SeqStep& x, SeqStep& y) : a(x), b(y) { std::swap(a, b); }
  ~SwapIn() { std::swap(a, b); }
};

void CpAttention::begin_batch(const std::vector<StepLayout>& L, const std::vector<SeqPos>& at) {
  MO_CHECK(L.size() == at.size(), "a layout per sequence");
  items_.resize(L.size());
  for (size_t i = 0; i < L.size(); ++i) {
    SwapIn in(s_, items_[i]);
    set_seq_pos(at[i]);
    begin_step(L[i]);
  }
}

void CpAttention::forward_item(size_t i, int64_t layer, const AttnWeights& w, const Rope& rope,
                               const float* h, LayerCache& cache, float* out, LayerCache* kv_src) {
  MO_CHECK(i < items_.size(), "batch item ", i, " of ", items_.size());
  SwapIn in(s_, items_[i]);
  forward(layer, w, rope, h, cache, out, kv_src);
}

std::vector<CpAttention::SeqPos> CpAttention::end_batch() {
  std::vector<SeqPos> at(items_.size());
  for (size_t i = 0; i < items_.size(); ++i) {
    SwapIn in(s_, items_[i]);
    end_step();
    at[i] = seq_pos();
  }
  return at;
}

}  // namespace modelone
