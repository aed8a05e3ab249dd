// CpAttention::decode: one new position of the sequence, on the tail rank, with the caches
// sharded over the cp group. Besides the context (each rank scores and attends the entries it
// holds), the layer's large projections are split over the group too, since the other ranks
// would otherwise wait through them: q heads (wq_b), output groups (wo_a) and output rows (wo_b)
// go to the ranks by output group. With cp = 1 every share is the whole, and no message moves.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dist/cp_attention.h"
#include "dist/cpu_time.h"
#include "model/base/check.h"

namespace modelone {

namespace {

// [a, b) of n items split evenly over P ranks (the first n % P one longer).
std::pair<int64_t, int64_t> split(int64_t n, int P, int r) {
  const int64_t a = r * (n / P) + std::min<int64_t>(r, n % P);
  return {a, a + n / P + (r < n % P ? 1 : 0)};
}

// What cp rank r projects in a decode step: output groups g0 .. g1 - 1, their heads h0 ..
// h0 + nh - 1, and output rows d0 .. d0 + nd - 1.
struct Share {
  int64_t g0, g1, h0, nh, d0, nd;
};
Share share_of(const ModelConfig& cfg, int P, int r) {
  const int64_t hpg = cfg.num_heads / cfg.o_groups;
  const auto [g0, g1] = split(cfg.o_groups, P, r);
  const auto [d0, d1] = split(cfg.hidden_size, P, r);
  return {g0, g1, g0 * hpg, (g1 - g0) * hpg, d0, d1 - d0};
}

}  // namespace

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

int64_t CpAttention::merge_ranks_topk(std::vector<Candidate>& mine, int32_t* top, CpTimers& timers) {
  const int P = cp_.size();
  const int64_t K = cfg_.index_topk;
  comm::Timed t(comm::stats(counters_, "cp.topk"), P > 1 ? int64_t(K * sizeof(Candidate)) * (P - 1) : 0);
  const double w0 = wall_seconds();
  mine.resize(size_t(K), Candidate{-INFINITY, -1});  // padding: not a candidate
  std::vector<Candidate> all(size_t(K * P));
  if (P > 1) {
    cp_.allgather(reinterpret_cast<const uint8_t*>(mine.data()), int64_t(K * sizeof(Candidate)),
                  reinterpret_cast<uint8_t*>(all.data()));
  } else {
    all = mine;
  }
  all.erase(std::remove_if(all.begin(), all.end(), [](const Candidate& c) { return c.index < 0; }),
            all.end());
  const int64_t k = merge_candidates(std::move(all), K, top);
  timers.topk += wall_seconds() - w0;
  return k;
}

const std::vector<int32_t>& CpAttention::shared_decode_topk(int64_t l, int64_t pos, const float* iq,
                                                            const LayerCache& src) {
  const SharedAttn& sa = cfg_.shared;
  if (!sa.is_index_source(l)) return shared_top_;  // the latest index source's picks
  const int64_t nI = cfg_.index_n_heads, Di = cfg_.index_head_dim, K = cfg_.index_topk;
  const int P = cp_.size();
  CpTimers& timers = timers_[size_t(AttnKind::Shared)];
  const bool source = l == sa.candidate_source;
  std::vector<Candidate> blocks;
  cands_.clear();
  timed(timers.indexer, timers.compute_cpu, [&] {
    shared_candidates(cfg_, l, iq, iq + nI * Di, pos, src.idx_keys,
                      sa.uses_candidates(l) ? &cand_blocks_ : nullptr, &cands_, source ? &blocks : nullptr);
  });
  if (source) {  // every rank's best partial block maxima decide the blocks, the same everywhere
    const int64_t nb = sa.candidate_topk_blocks;
    blocks.resize(size_t(nb), Candidate{-INFINITY, -1});
    std::vector<Candidate> all(size_t(nb * P));
    comm::Timed t(comm::stats(counters_, "cp.blocks"), P > 1 ? int64_t(nb * sizeof(Candidate)) * (P - 1) : 0);
    if (P > 1) {
      cp_.allgather(reinterpret_cast<const uint8_t*>(blocks.data()), int64_t(nb * sizeof(Candidate)),
                    reinterpret_cast<uint8_t*>(all.data()));
    } else {
      all = blocks;
    }
    cand_blocks_ = merge_blocks(cfg_, pos, sa.ratio[size_t(l)], all);
  }
  shared_top_.resize(size_t(K));
  shared_top_.resize(size_t(merge_ranks_topk(cands_, shared_top_.data(), timers)));
  return shared_top_;
}

void CpAttention::decode(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
                         LayerCache& cache, LayerCache* kv_src, float* out) {
  const int me = cp_.rank(), P = cp_.size();
  const int64_t pos = L_.p0;
  const int owner = L_.owner(pos);
  const bool am_owner = me == owner;
  const AttnKind kind = cfg_.attn[size_t(l)];
  const int64_t H = cfg_.num_heads, Dh = cfg_.head_dim, nI = cfg_.index_n_heads,
                Di = cfg_.index_head_dim, K = cfg_.index_topk, R = cfg_.q_lora_rank,
                GR = cfg_.o_groups * cfg_.o_lora_rank;
  CpTimers& timers = timers_[size_t(kind)];
  double& cpu = timers.compute_cpu;
  const std::vector<float> sink = w.attn_sink.to_f32();

  // The tail: the keys, the window and the compressors (their state lives here).
  const float* kw = nullptr;
  int64_t nw = 0;
  if (am_owner) {
    timed(timers.project, cpu, [&] {
      attn_project_keys(cfg_, l, w, rope, h, 1, &pos, kv_dtype_, &p_);
      attn_project_latent(cfg_, l, w, rope, h, 1, &p_);
      new_ent_.rows = KvStore(DType::F32, Dh);
      new_ent_.index.clear();
      new_key_.rows = KvStore(DType::F32, Di);
      new_key_.index.clear();
      wins_.resize(1);
      attn_advance(cfg_, l, w, rope, p_, Segment{pos, 1, 0}, cache, &wins_[0], &new_ent_, &new_key_);
    });
    const SegmentWindow& win = wins_[0];
    const int64_t w_lo = std::max<int64_t>(0, pos - cfg_.sliding_window + 1) - win.first_pos;
    kw = win.rows.data() + w_lo * Dh;
    nw = pos - win.first_pos + 1 - w_lo;
  }
  if (kind == AttnKind::Sliding) {  // the window lives on the tail: nothing to share
    if (!am_owner) return;
    o_.resize(size_t(H * Dh));
    timed(timers.attend, cpu, [&] {
      q_.resize(size_t(H * Dh));
      attn_project_heads(cfg_, w, rope, p_.q_lat.data(), 1, &pos, 0, H, q_.data());
      decode_partial(q_.data(), kw, nw, nullptr, 0);
    });
    timed(timers.merge, cpu, [&] { attn_merge(1, H, Dh, sink.data(), {&part_}, o_.data()); });
    timed(timers.output, cpu, [&] { attn_output(cfg_, w, rope, o_.data(), 1, &pos, out); });
    return;
  }

  // The q latent, the indexer's query and the entry whose window closes at pos (if one does)
  // go to every cp rank. V4.1: only index sources score, only kv sources make entries (and the
  // indexer keys with them).
  const int64_t rate = cfg_.compress_rate(l);
  const bool shared = kind == AttnKind::Shared, csa = kind == AttnKind::CSA;
  const bool scores = csa || (shared && cfg_.shared.is_index_source(l));
  const bool makes = !shared || cfg_.shared.is_kv_source(l), keys = csa || (shared && makes);
  const bool closes = makes && (pos + 1) % rate == 0;
  const int64_t gi = (pos + 1) / rate - 1;
  const int64_t niq = scores ? nI * Di + nI : 0, nent = closes ? Dh + (keys ? Di : 0) : 0;
  msg_.resize(size_t(R + niq + nent));
  if (am_owner) {
    std::memcpy(msg_.data(), p_.q_lat.data(), size_t(R) * 4);
    if (scores) {
      std::memcpy(msg_.data() + R, p_.iq.q.data(), size_t(nI * Di) * 4);
      std::memcpy(msg_.data() + R + nI * Di, p_.iq.w.data(), size_t(nI) * 4);
    }
    if (closes) {
      MO_CHECK(new_ent_.size() == 1 && new_ent_.index[0] == gi, "layer ", l, " at ", pos);
      new_ent_.rows.read(0, 1, msg_.data() + R + niq);
      if (keys) new_key_.rows.read(0, 1, msg_.data() + R + niq + Dh);
    }
  }
  if (P > 1) {
    comm::Timed t(comm::stats(counters_, "cp.query_bcast"), am_owner ? int64_t(msg_.size() * 4) * (P - 1) : 0);
    cp_.bcast(msg_.data(), int64_t(msg_.size()), owner);
  }
  if (closes && me == int(gi % P)) {  // placed round-robin: no rank fills first
    cache.entries.append(msg_.data() + R + niq, 1, gi);
    if (keys) cache.idx_keys.append(msg_.data() + R + niq + Dh, 1, gi);
  }
  // q: each rank projects the heads of its output groups, then every rank gets all heads.
  const Share sh = share_of(cfg_, P, me);
  qs_.resize(size_t(sh.nh * Dh));
  timed(timers.project, cpu, [&] {
    attn_project_heads(cfg_, w, rope, msg_.data(), 1, &pos, sh.h0, sh.nh, qs_.data());
  });
  if (P > 1) {
    comm::Timed t(comm::stats(counters_, "cp.q_heads"), int64_t(qs_.size() * 4) * (P - 1));
    cp_.allgatherv(qs_.data(), int64_t(qs_.size()), &q_);
  } else {
    q_.swap(qs_);
  }

  // The compressed keys this rank attends: CSA the global top-k it holds, HCA all it holds.
  const float* kc = nullptr;
  int64_t nc = 0;
  if (csa || shared) {
    std::vector<int32_t> top(static_cast<size_t>(K));
    int64_t k = 0;
    if (csa) {
      cands_.clear();
      timed(timers.indexer, cpu, [&] {
        indexer_candidates(cfg_, msg_.data() + R, msg_.data() + R + nI * Di, pos, cache.idx_keys, &cands_);
      });
      k = merge_ranks_topk(cands_, top.data(), timers);
    } else {  // V4.1: the top-k of the latest index source, over its kv source's store
      const std::vector<int32_t>& t = shared_decode_topk(l, pos, msg_.data() + R, *kv_src);
      k = int64_t(t.size());
      std::copy(t.begin(), t.end(), top.begin());
    }
    // The picked entries this rank holds, from the store the layer reads.
    const EntryStore& store = shared ? kv_src->entries : cache.entries;
    std::vector<int32_t> rows;
    const auto& idx = store.index;
    for (int64_t i = 0; i < k; ++i) {
      auto it = std::lower_bound(idx.begin(), idx.end(), top[size_t(i)]);
      if (it != idx.end() && *it == top[size_t(i)]) rows.push_back(int32_t(it - idx.begin()));
    }
    nc = int64_t(rows.size());
    gathered_.resize(size_t(nc * Dh));
    store.rows.gather(rows.data(), nc, gathered_.data());
    kc = gathered_.data();
  } else {  // HCA: every entry this rank holds has closed by now
    nc = cache.entries.size();
    kc = cache.entries.rows.view(0, nc, gathered_);
  }
  timed(timers.attend, cpu, [&] { decode_partial(q_.data(), kw, nw, kc, nc); });

  // Every rank gets every rank's partials and merges the heads of its output groups (the sink
  // counted once), projects them through its wo_a blocks and its rows of wo_b.
  const int64_t np = H * Dh + 2 * H;
  {
    const double w0 = wall_seconds();
    if (P > 1) {
      std::vector<float> mine(static_cast<size_t>(np));
      std::memcpy(mine.data(), part_.o.data(), size_t(H * Dh) * 4);
      std::memcpy(mine.data() + H * Dh, part_.mx.data(), size_t(H) * 4);
      std::memcpy(mine.data() + H * Dh + H, part_.sum.data(), size_t(H) * 4);
      parts_buf_.resize(size_t(np * P));
      comm::Timed t(comm::stats(counters_, "cp.partials"), np * 4 * (P - 1));
      cp_.allgather(mine.data(), np, parts_buf_.data());
    }
    std::vector<const AttnPartials*> parts;
    rank_parts_.resize(size_t(P));
    for (int r = 0; r < P; ++r) {  // the heads of this rank's groups, from each rank
      AttnPartials& ap = rank_parts_[size_t(r)];
      const float* src = P > 1 ? parts_buf_.data() + r * np : nullptr;
      const float* o = P > 1 ? src : part_.o.data();
      const float* mx = P > 1 ? src + H * Dh : part_.mx.data();
      const float* sum = P > 1 ? src + H * Dh + H : part_.sum.data();
      ap.o.assign(o + sh.h0 * Dh, o + (sh.h0 + sh.nh) * Dh);
      ap.mx.assign(mx + sh.h0, mx + sh.h0 + sh.nh);
      ap.sum.assign(sum + sh.h0, sum + sh.h0 + sh.nh);
      parts.push_back(&ap);
    }
    o_.resize(size_t(sh.nh * Dh));
    attn_merge(1, sh.nh, Dh, sink.data() + sh.h0, parts, o_.data());
    timers.merge += wall_seconds() - w0;
  }
  const double w0 = wall_seconds();
  zs_.resize(size_t((sh.g1 - sh.g0) * cfg_.o_lora_rank));
  timed(timers.output, cpu, [&] {
    attn_output_groups(cfg_, w, rope, o_.data(), 1, &pos, sh.g0, sh.g1, zs_.data());
  });
  if (P > 1) {
    comm::Timed t(comm::stats(counters_, "cp.output"), int64_t(zs_.size() * 4) * (P - 1) + sh.nd * 4);
    cp_.allgatherv(zs_.data(), int64_t(zs_.size()), &z_);
    MO_CHECK(int64_t(z_.size()) == GR);
    std::vector<float> rows(static_cast<size_t>(sh.nd));
    attn_output_rows(cfg_, w, z_.data(), 1, sh.d0, sh.nd, rows.data(), sh.nd);
    std::vector<float> all;
    cp_.gatherv(rows.data(), sh.nd, &all, owner);
    if (am_owner) std::copy(all.begin(), all.end(), out);
  } else {
    attn_output_rows(cfg_, w, zs_.data(), 1, 0, cfg_.hidden_size, out, cfg_.hidden_size);
  }
  timers.output += wall_seconds() - w0;
}

}  // namespace modelone
