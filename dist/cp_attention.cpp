#include "dist/cp_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dist/cpu_time.h"
#include "model/check.h"

namespace modelone {

namespace {
// Runs f, adding its wall time to `slot` and its CPU time to `cpu`.
template <class F>
void timed(double& slot, double& cpu, F&& f) {
  const double w0 = comm::now(), c0 = process_cpu_seconds();
  f();
  slot += comm::now() - w0;
  cpu += process_cpu_seconds() - c0;
}
}  // namespace

CpAttention::CpAttention(const ModelConfig& cfg, const comm::Comm& cp, DType kv_dtype,
                         comm::Counters* counters)
    : cfg_(cfg), cp_(cp), kv_dtype_(kv_dtype), counters_(counters) {
  reset();
}

void CpAttention::reset() {
  cache_end_.assign(size_t(cp_.size()), 0);
  tail_ = 0;
  pos_ = 0;
  L_ = idle_layout(cp_.size());
}

void CpAttention::begin_step(const StepLayout& L) {
  MO_CHECK(L.phase == Phase::Idle || L.p0 == pos_, "step at ", L.p0, ", sequence at ", pos_);
  L_ = L;
  if (L.phase == Phase::Prefill) halo_.plan(cfg_, L, cache_end_, cp_.rank());
}

void CpAttention::end_step() {
  if (L_.phase == Phase::Idle || L_.n == 0) return;
  for (size_t r = 0; r < L_.segs.size(); ++r)
    if (!L_.segs[r].empty()) cache_end_[r] = L_.segs[r].back().pos + L_.segs[r].back().n;
  tail_ = L_.tail();
  pos_ = L_.p0 + L_.n;
}

void CpAttention::forward(int64_t layer, const AttnWeights& w, const Rope& rope, const float* h,
                          LayerCache& cache, float* out) {
  if (L_.phase == Phase::Prefill) prefill(layer, w, rope, h, cache, out);
  else if (L_.phase == Phase::Decode) decode(layer, w, rope, h, cache, out);
}

EntryTable CpAttention::table(const EntryStore& local, std::vector<float>& dense, const char* op) {
  const int64_t W = local.rows.width();
  if (cp_.size() == 1) {  // this rank made every entry: the store is the table
    MO_CHECK(local.index.empty() || local.index.back() == local.size() - 1);
    return {local.rows.view(0, local.size(), dense), local.size()};
  }
  {
    comm::OpStats dummy;
    comm::Timed t(counters_ ? (*counters_)[op] : dummy,
                  int64_t(local.rows.bytes() + local.index.size() * 4) * (cp_.size() - 1));
    cp_.allgatherv(local.rows.raw(0), int64_t(local.rows.bytes()), &raw_buf_);
    cp_.allgatherv(local.index.data(), int64_t(local.index.size()), &idx_buf_);
  }
  const int64_t n = int64_t(idx_buf_.size());
  const size_t row_bytes = size_t(W) * dtype_size(local.rows.dtype());
  dense.resize(size_t(n * W));
  std::vector<char> seen(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t g = idx_buf_[size_t(i)];
    MO_CHECK(g >= 0 && g < n && !seen[size_t(g)], "entry ", g, " of ", n, " held twice or out of range");
    seen[size_t(g)] = 1;
    widen_to_f32(local.rows.dtype(), raw_buf_.data() + size_t(i) * row_bytes, dense.data() + g * W,
                 size_t(W));
  }
  return {dense.data(), n};
}

void CpAttention::prefill(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
                          LayerCache& cache, float* out) {
  const int me = cp_.rank();
  const std::vector<Segment>& segs = L_.segs[size_t(me)];
  const int64_t T = L_.rows[size_t(me)];
  const AttnKind kind = cfg_.attn[size_t(l)];
  std::vector<int64_t> pos;
  for (const Segment& s : segs)
    for (int64_t i = 0; i < s.n; ++i) pos.push_back(s.pos + i);
  double& cpu = timers.compute_cpu;
  timed(timers.project, cpu, [&] {
    attn_project_keys(cfg_, l, w, rope, h, T, pos.data(), kv_dtype_, &p_);
  });
  halo_.start(cp_, l, kind, p_, cache, counters_);
  timed(timers.project, cpu, [&] { attn_project_queries(cfg_, l, w, rope, h, T, &p_); });
  halo_.finish(counters_);
  wins_.resize(segs.size());
  timed(timers.project, cpu, [&] {
    for (size_t i = 0; i < segs.size(); ++i) {
      halo_.restart(int64_t(i), cache);
      attn_advance(cfg_, l, w, rope, p_, segs[i], cache, &wins_[i]);
    }
  });
  EntryTable ent;
  if (kind != AttnKind::Sliding) ent = table(cache.entries, ent_dense_, "cp.entries");
  if (kind == AttnKind::CSA) {
    const EntryTable keys = table(cache.idx_keys, key_dense_, "cp.index_keys");
    picks_.resize(size_t(T * cfg_.index_topk));
    n_picks_.resize(size_t(T));
    timed(timers.indexer, cpu, [&] {
      indexer_select(cfg_, p_.iq, T, pos.data(), keys.rows, keys.n, picks_.data(), n_picks_.data());
    });
  }
  const std::vector<float> sink = w.attn_sink.to_f32();
  timed(timers.attend, cpu, [&] {
    attn_attend(cfg_, l, p_, segs, wins_, ent, picks_.data(), n_picks_.data(), &part_);
    attn_merge(T, cfg_.num_heads, cfg_.head_dim, sink.data(), {&part_}, part_.o.data());
  });
  timed(timers.output, cpu, [&] { attn_output(cfg_, w, rope, part_.o.data(), T, pos.data(), out); });
}

void CpAttention::decode_partial(const float* q, const float* kw, int64_t nw, const float* kc,
                                 int64_t nc) {
  const int64_t H = cfg_.num_heads, Dh = cfg_.head_dim;
  part_.resize(1, H, Dh);
  // One query: threads split the heads.
  const int64_t nt = std::min<int64_t>(H, omp_get_max_threads()), hb = (H + nt - 1) / nt;
#pragma omp parallel for schedule(static) if (nt > 1)
  for (int64_t b = 0; b < nt; ++b) {
    static thread_local std::vector<float> logits;
    const int64_t h0 = b * hb, nh = std::min(hb, H - h0);
    if (nh <= 0) continue;
    attn_partial(q + h0 * Dh, nh, Dh, kw, nw, kc, nc, part_.o.data() + h0 * Dh,
                 part_.mx.data() + h0, part_.sum.data() + h0, logits);
  }
}

void CpAttention::decode(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
                         LayerCache& cache, float* out) {
  const int me = cp_.rank(), cp = cp_.size();
  const int64_t P = L_.p0;
  const int owner = L_.owner(P);
  const bool am_owner = me == owner;
  const AttnKind kind = cfg_.attn[size_t(l)];
  const int64_t H = cfg_.num_heads, Dh = cfg_.head_dim, nI = cfg_.index_n_heads,
                Di = cfg_.index_head_dim, K = cfg_.index_topk;
  double& cpu = timers.compute_cpu;
  const float* kw = nullptr;
  int64_t nw = 0;
  if (am_owner) {
    timed(timers.project, cpu, [&] {
      attn_project_keys(cfg_, l, w, rope, h, 1, &P, kv_dtype_, &p_);
      attn_project_queries(cfg_, l, w, rope, h, 1, &p_);
      new_ent_.rows = KvStore(DType::F32, Dh);
      new_ent_.index.clear();
      new_key_.rows = KvStore(DType::F32, Di);
      new_key_.index.clear();
      wins_.resize(1);
      attn_advance(cfg_, l, w, rope, p_, Segment{P, 1, 0}, cache, &wins_[0], &new_ent_, &new_key_);
    });
    const SegmentWindow& win = wins_[0];
    const int64_t w_lo = std::max<int64_t>(0, P - cfg_.sliding_window + 1) - win.first_pos;
    kw = win.rows.data() + w_lo * Dh;
    nw = P - win.first_pos + 1 - w_lo;
  }
  const std::vector<float> sink = w.attn_sink.to_f32();
  o_.resize(size_t(H * Dh));
  if (kind == AttnKind::Sliding) {  // the window lives on the tail: nothing to share
    if (!am_owner) return;
    timed(timers.attend, cpu, [&] { decode_partial(p_.q.data(), kw, nw, nullptr, 0); });
    timed(timers.merge, cpu, [&] { attn_merge(1, H, Dh, sink.data(), {&part_}, o_.data()); });
    timed(timers.output, cpu, [&] { attn_output(cfg_, w, rope, o_.data(), 1, &P, out); });
    return;
  }

  // The query, and the entry whose window closes at P (if one does), go to every cp rank.
  const int64_t rate = cfg_.compress_rate(l);
  const bool closes = (P + 1) % rate == 0, csa = kind == AttnKind::CSA;
  const int64_t gi = (P + 1) / rate - 1;
  const int64_t nq = H * Dh, niq = csa ? nI * Di + nI : 0, nent = closes ? Dh + (csa ? Di : 0) : 0;
  msg_.resize(size_t(nq + niq + nent));
  if (am_owner) {
    std::memcpy(msg_.data(), p_.q.data(), size_t(nq) * 4);
    if (csa) {
      std::memcpy(msg_.data() + nq, p_.iq.q.data(), size_t(nI * Di) * 4);
      std::memcpy(msg_.data() + nq + nI * Di, p_.iq.w.data(), size_t(nI) * 4);
    }
    if (closes) {
      MO_CHECK(new_ent_.size() == 1 && new_ent_.index[0] == gi, "layer ", l, " at ", P);
      new_ent_.rows.read(0, 1, msg_.data() + nq + niq);
      if (csa) new_key_.rows.read(0, 1, msg_.data() + nq + niq + Dh);
    }
  }
  if (cp > 1) {
    comm::OpStats dummy;
    comm::Timed t(counters_ ? (*counters_)["cp.query_bcast"] : dummy,
                  am_owner ? int64_t(msg_.size() * 4) * (cp - 1) : 0);
    cp_.bcast(msg_.data(), int64_t(msg_.size()), owner);
  }
  if (closes && me == int(gi % cp)) {  // placed round-robin: no rank fills first
    cache.entries.append(msg_.data() + nq + niq, 1, gi);
    if (csa) cache.idx_keys.append(msg_.data() + nq + niq + Dh, 1, gi);
  }

  const float* kc = nullptr;
  int64_t nc = 0;
  if (csa) {
    cands_.clear();
    timed(timers.indexer, cpu, [&] {
      indexer_candidates(cfg_, msg_.data() + nq, msg_.data() + nq + nI * Di, P, cache.idx_keys, &cands_);
    });
    std::vector<int32_t> top(static_cast<size_t>(K));
    int64_t k = 0;
    {
      comm::OpStats dummy;
      comm::Timed t(counters_ ? (*counters_)["cp.topk"] : dummy,
                    cp > 1 ? int64_t(K * sizeof(Candidate)) * (cp - 1) : 0);
      const double w0 = comm::now();
      cands_.resize(size_t(K), Candidate{-INFINITY, -1});  // padding: not a candidate
      std::vector<Candidate> all(size_t(K * cp));
      if (cp > 1) {
        cp_.allgather(reinterpret_cast<const uint8_t*>(cands_.data()), int64_t(K * sizeof(Candidate)),
                      reinterpret_cast<uint8_t*>(all.data()));
      } else {
        all = cands_;
      }
      all.erase(std::remove_if(all.begin(), all.end(), [](const Candidate& c) { return c.index < 0; }),
                all.end());
      k = merge_candidates(std::move(all), K, top.data());
      timers.topk += comm::now() - w0;
    }
    // The chosen entries this rank holds.
    std::vector<int32_t> rows;
    const auto& idx = cache.entries.index;
    for (int64_t i = 0; i < k; ++i) {
      auto it = std::lower_bound(idx.begin(), idx.end(), top[size_t(i)]);
      if (it != idx.end() && *it == top[size_t(i)]) rows.push_back(int32_t(it - idx.begin()));
    }
    nc = int64_t(rows.size());
    gathered_.resize(size_t(nc * Dh));
    cache.entries.rows.gather(rows.data(), nc, gathered_.data());
    kc = gathered_.data();
  } else {  // HCA: every entry this rank holds has closed by now
    nc = cache.entries.size();
    kc = cache.entries.rows.view(0, nc, gathered_);
  }
  timed(timers.attend, cpu, [&] { decode_partial(msg_.data(), kw, nw, kc, nc); });

  // Partials meet at the tail; the sink joins once there.
  const double w0 = comm::now();
  const int64_t np = H * Dh + 2 * H;
  std::vector<const AttnPartials*> parts;
  if (cp > 1) {
    std::vector<float> mine(static_cast<size_t>(np));
    std::memcpy(mine.data(), part_.o.data(), size_t(H * Dh) * 4);
    std::memcpy(mine.data() + H * Dh, part_.mx.data(), size_t(H) * 4);
    std::memcpy(mine.data() + H * Dh + H, part_.sum.data(), size_t(H) * 4);
    parts_buf_.resize(size_t(np * cp));
    {
      comm::OpStats dummy;
      comm::Timed t(counters_ ? (*counters_)["cp.partials"] : dummy, am_owner ? 0 : np * 4);
      cp_.gather(mine.data(), np, parts_buf_.data(), owner);
    }
    if (am_owner) {
      rank_parts_.resize(size_t(cp));
      for (int r = 0; r < cp; ++r) {
        AttnPartials& ap = rank_parts_[size_t(r)];
        const float* src = parts_buf_.data() + r * np;
        ap.o.assign(src, src + H * Dh);
        ap.mx.assign(src + H * Dh, src + H * Dh + H);
        ap.sum.assign(src + H * Dh + H, src + np);
        parts.push_back(&ap);
      }
    }
  } else {
    parts.push_back(&part_);
  }
  if (!am_owner) {
    timers.merge += comm::now() - w0;
    return;
  }
  attn_merge(1, H, Dh, sink.data(), parts, o_.data());
  timers.merge += comm::now() - w0;
  timed(timers.output, cpu, [&] { attn_output(cfg_, w, rope, o_.data(), 1, &P, out); });
}

}  // namespace modelone
