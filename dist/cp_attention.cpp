#include "dist/cp_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "comm/clock.h"
#include "model/base/check.h"

namespace modelone {

CpTimers CpAttention::timers() const {
  CpTimers t;
  for (const CpTimers& k : timers_) t += k;
  return t;
}

CpAttention::CpAttention(const ModelConfig& cfg, const comm::Comm& cp, DType kv_dtype,
                         comm::Counters* counters)
    : cfg_(cfg), cp_(cp), kv_dtype_(kv_dtype), counters_(counters) {
  reset();
}

void CpAttention::reset() {
  s_.cache_end.assign(size_t(cp_.size()), 0);
  s_.tail = 0;
  s_.pos = 0;
  s_.L = idle_layout(cp_.size());
}

void CpAttention::begin_step(const StepLayout& L) {
  MO_CHECK(L.phase == Phase::Idle || L.p0 == s_.pos, "step at ", L.p0, ", sequence at ", s_.pos);
  s_.L = L;
  if (L.phase == Phase::Prefill) s_.halo.plan(cfg_, L, s_.cache_end, cp_.rank());
}

void CpAttention::end_step() {
  if (s_.L.phase == Phase::Idle || s_.L.n == 0) return;
  for (size_t r = 0; r < s_.L.segs.size(); ++r)
    if (!s_.L.segs[r].empty()) s_.cache_end[r] = s_.L.segs[r].back().pos + s_.L.segs[r].back().n;
  s_.tail = s_.L.tail();
  s_.pos = s_.L.p0 + s_.L.n;
}

void CpAttention::forward(int64_t layer, const AttnWeights& w, const Rope& rope, const float* h,
                          LayerCache& cache, float* out, LayerCache* kv_src) {
  MO_CHECK(cfg_.attn[size_t(layer)] != AttnKind::Shared || kv_src, "layer ", layer,
           ": a Shared layer needs its kv source's cache");
  if (s_.L.phase == Phase::Prefill) prefill(layer, w, rope, h, cache, kv_src, out);
  else if (s_.L.phase == Phase::Decode) decode(layer, w, rope, h, cache, kv_src, out);
}

EntryTable CpAttention::table(const EntryStore& local, std::vector<float>& dense, const char* op) {
  const int64_t W = local.rows.width();
  if (cp_.size() == 1) {  // this rank made every entry: the store is the table
    MO_CHECK(local.index.empty() || local.index.back() == local.size() - 1);
    return {local.rows.view(0, local.size(), dense), local.size()};
  }
  {
    comm::Timed t(comm::stats(counters_, op),
                  int64_t(local.rows.bytes() + local.index.size() * 4) * (cp_.size() - 1));
    cp_.allgatherv(local.rows.raw(0), int64_t(local.rows.bytes()), &raw_buf_);
    cp_.allgatherv(local.index.data(), int64_t(local.index.size()), &idx_buf_);
  }
  const int64_t n = int64_t(idx_buf_.size());
  const size_t row_bytes = size_t(local.rows.codec().row_bytes());
  dense.resize(size_t(n * W));
  std::vector<char> seen(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t g = idx_buf_[size_t(i)];
    MO_CHECK(g >= 0 && g < n && !seen[size_t(g)], "entry ", g, " of ", n, " held twice or out of range");
    seen[size_t(g)] = 1;
    local.rows.codec().decode(raw_buf_.data() + size_t(i) * row_bytes, 1, dense.data() + g * W);
  }
  return {dense.data(), n};
}

EntryTable CpAttention::shared_prefill(int64_t l, const LayerCache& src,
                                      const std::vector<int64_t>& pos) {
  const SharedAttn& sa = cfg_.shared;
  if (sa.is_kv_source(l)) {  // one gather per source and step, read by every layer after it
    s_.shared_ent = table(src.entries, s_.shared_ent_dense, "cp.entries");
    s_.shared_keys = table(src.idx_keys, s_.shared_key_dense, "cp.index_keys");
  }
  if (sa.is_index_source(l)) {
    const int64_t T = int64_t(pos.size());
    s_.picks.resize(size_t(T * cfg_.index_topk));
    s_.n_picks.resize(size_t(T));
    CpTimers& timers = timers_[size_t(AttnKind::Shared)];
    comm::timed(timers.indexer, timers.compute_cpu, [&] {
      shared_select(cfg_, l, p_.iq, T, pos.data(), s_.shared_keys.rows, s_.shared_keys.n, &s_.blocks,
                    s_.picks.data(), s_.n_picks.data());
    });
  }
  return s_.shared_ent;
}

void CpAttention::prefill(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
                          LayerCache& cache, LayerCache* kv_src, float* out) {
  const int me = cp_.rank();
  const std::vector<Segment>& segs = s_.L.segs[size_t(me)];
  const int64_t T = s_.L.rows[size_t(me)];
  const AttnKind kind = cfg_.attn[size_t(l)];
  std::vector<int64_t> pos;
  for (const Segment& s : segs)
    for (int64_t i = 0; i < s.n; ++i) pos.push_back(s.pos + i);
  CpTimers& timers = timers_[size_t(kind)];
  double& cpu = timers.compute_cpu;
  comm::timed(timers.project, cpu, [&] {
    attn_project_keys(cfg_, l, w, rope, h, T, pos.data(), kv_dtype_, &p_);
  });
  s_.halo.start(cp_, l, p_, cache, counters_);
  // The query projections overlap the halo transfers.
  comm::timed(timers.project, cpu, [&] { attn_project_latent(cfg_, l, w, rope, h, T, &p_); });
  s_.halo.progress();
  comm::timed(timers.project, cpu, [&] {
    p_.q.resize(size_t(T * cfg_.num_heads * cfg_.head_dim));
    attn_project_heads(cfg_, w, rope, p_.q_lat.data(), T, pos.data(), 0, cfg_.num_heads, p_.q.data());
  });
  s_.halo.finish(counters_);
  wins_.resize(segs.size());
  comm::timed(timers.project, cpu, [&] {
    for (size_t i = 0; i < segs.size(); ++i) {
      s_.halo.restart(int64_t(i), cache);
      attn_advance(cfg_, l, w, rope, p_, segs[i], cache, &wins_[i]);
    }
  });
  EntryTable ent;
  if (kind == AttnKind::Shared) ent = shared_prefill(l, *kv_src, pos);
  else if (kind != AttnKind::Sliding) ent = table(cache.entries, ent_dense_, "cp.entries");
  if (kind == AttnKind::CSA) {
    const EntryTable keys = table(cache.idx_keys, key_dense_, "cp.index_keys");
    s_.picks.resize(size_t(T * cfg_.index_topk));
    s_.n_picks.resize(size_t(T));
    comm::timed(timers.indexer, cpu, [&] {
      indexer_select(cfg_, p_.iq, T, pos.data(), keys.rows, keys.n, s_.picks.data(), s_.n_picks.data());
    });
  }
  const std::vector<float> sink = w.attn_sink.to_f32();
  comm::timed(timers.attend, cpu, [&] {
    attn_attend(cfg_, l, p_, segs, wins_, {ent}, s_.picks.data(), s_.n_picks.data(), &part_);
    attn_merge(T, cfg_.num_heads, cfg_.head_dim, sink.data(), {&part_}, part_.o.data());
  });
  comm::timed(timers.output, cpu, [&] { attn_output(cfg_, w, rope, part_.o.data(), T, pos.data(), out); });
}

}  // namespace modelone
