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
#include "comm/clock.h"
#include "model/base/check.h"
#include "model/base/even_split.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

namespace {

// [a, b) of n items split evenly over P ranks.
std::pair<int64_t, int64_t> split(int64_t n, int P, int r) {
  const EvenSplit s(n, P);
  return {s.begin(r), s.end(r)};
}

}  // namespace

// What cp rank r projects in a decode step: output groups g0 .. g1 - 1, their heads h0 ..
// h0 + nh - 1, and output rows d0 .. d0 + nd - 1.
struct DecodeShare {
  int64_t g0, g1, h0, nh, d0, nd;
};

// The message the tail broadcasts, offsets in floats: the q latent [R]; at a scoring layer the
// indexer's query [nI * Di] and head weights [nI]; when a window closes at pos, the new entry
// [Dh] and, where the layer keeps indexer keys, its key [Di].
struct DecodeQueryMsg {
  int64_t lat = 0, iq = 0, iw = 0, ent = 0, key = 0, size = 0;
};

// The partials every rank sends, offsets in floats: unnormalised output [H * Dh], running max
// [H], running sum [H].
struct DecodePartialsMsg {
  int64_t o = 0, mx = 0, sum = 0, size = 0;
};

// One decode step of one layer: where the position lives, what the layer does with it, and the
// layouts of the two messages (computed here only).
struct DecodeStep {
  int64_t l = 0, pos = 0, gi = 0;  // gi: the global index of the entry closing at pos
  int me = 0, P = 1, owner = 0;
  bool am_owner = false;
  AttnKind kind = AttnKind::Sliding;
  // V4.1: only index sources score, only kv sources make entries (and the indexer keys with
  // them); V4's CSA layers do all three, HCA layers make entries only.
  bool shared = false, csa = false, scores = false, makes = false, keys = false, closes = false;
  DecodeShare share{};
  DecodeQueryMsg q;
  DecodePartialsMsg parts;
  CpTimers* timers = nullptr;
};

namespace {
DecodeStep decode_step(const ModelConfig& cfg, int64_t l, int64_t pos, int me, int P, int owner,
                       CpTimers* timers) {
  DecodeStep s;
  s.l = l;
  s.pos = pos;
  s.me = me;
  s.P = P;
  s.owner = owner;
  s.am_owner = me == owner;
  s.kind = cfg.attn[size_t(l)];
  s.timers = timers;
  s.shared = s.kind == AttnKind::Shared;
  s.csa = s.kind == AttnKind::CSA;
  s.scores = s.csa || (s.shared && cfg.shared.is_index_source(l));
  s.makes = s.kind != AttnKind::Sliding && (!s.shared || cfg.shared.is_kv_source(l));
  s.keys = s.csa || (s.shared && s.makes);
  const int64_t rate = s.kind == AttnKind::Sliding ? 1 : cfg.compress_rate(l);
  s.closes = s.makes && (pos + 1) % rate == 0;
  s.gi = (pos + 1) / rate - 1;
  const int64_t hpg = cfg.num_heads / cfg.o_groups;
  const auto [g0, g1] = split(cfg.o_groups, P, me);
  const auto [d0, d1] = split(cfg.hidden_size, P, me);
  s.share = {g0, g1, g0 * hpg, (g1 - g0) * hpg, d0, d1 - d0};
  const int64_t R = cfg.q_lora_rank, nI = cfg.index_n_heads, Di = cfg.index_head_dim,
                Dh = cfg.head_dim, H = cfg.num_heads;
  s.q.iq = R;
  s.q.iw = R + nI * Di;
  s.q.ent = R + (s.scores ? nI * Di + nI : 0);
  s.q.key = s.q.ent + Dh;
  s.q.size = s.q.ent + (s.closes ? Dh + (s.keys ? Di : 0) : 0);
  s.parts = {0, H * Dh, H * Dh + H, H * Dh + 2 * H};
  return s;
}
}  // namespace

void CpAttention::decode_partial(const float* q, const float* kw, int64_t nw, const float* kc,
                                 int64_t nc) {
  const int64_t H = cfg_.num_heads, Dh = cfg_.head_dim;
  part_.resize(1, H, Dh);
  // One query: threads split the heads (a small model's are too short to split).
  const int64_t nt = std::min<int64_t>(H, threads_for(H * Dh * (nw + nc) * 4)), hb = (H + nt - 1) / nt;
  parallel_for(nt, int(nt), [&](int64_t b) {
    static thread_local std::vector<float> logits;
    const int64_t h0 = b * hb, nh = std::min(hb, H - h0);
    if (nh <= 0) return;
    attn_partial(q + h0 * Dh, nh, Dh, kw, nw, kc, nc, part_.o.data() + h0 * Dh,
                 part_.mx.data() + h0, part_.sum.data() + h0, logits);
  });
}

int64_t CpAttention::merge_ranks_topk(std::vector<Candidate>& mine, int32_t* top, CpTimers& timers) {
  const int P = cp_.size();
  const int64_t K = cfg_.index_topk;
  comm::Timed t(comm::stats(counters_, "cp.topk"), P > 1 ? int64_t(K * sizeof(Candidate)) * (P - 1) : 0);
  const double w0 = comm::now();
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
  timers.topk += comm::now() - w0;
  return k;
}

const std::vector<int32_t>& CpAttention::shared_decode_topk(int64_t l, int64_t pos, const float* iq,
                                                            const LayerCache& src) {
  const SharedAttn& sa = cfg_.shared;
  if (!sa.is_index_source(l)) return s_.shared_top;  // the latest index source's picks
  const int64_t nI = cfg_.index_n_heads, Di = cfg_.index_head_dim, K = cfg_.index_topk;
  const int P = cp_.size();
  CpTimers& timers = timers_[size_t(AttnKind::Shared)];
  const bool source = l == sa.candidate_source;
  std::vector<Candidate> blocks;
  cands_.clear();
  comm::timed(timers.indexer, timers.compute_cpu, [&] {
    shared_candidates(cfg_, l, iq, iq + nI * Di, pos, src.idx_keys,
                      sa.uses_candidates(l) ? &s_.cand_blocks : nullptr, &cands_, source ? &blocks : nullptr);
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
    s_.cand_blocks = merge_blocks(cfg_, pos, sa.ratio[size_t(l)], all);
  }
  s_.shared_top.resize(size_t(K));
  s_.shared_top.resize(size_t(merge_ranks_topk(cands_, s_.shared_top.data(), timers)));
  return s_.shared_top;
}

void CpAttention::decode(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
                         LayerCache& cache, LayerCache* kv_src, float* out) {
  const DecodeStep s = decode_step(cfg_, l, s_.L.p0, cp_.rank(), cp_.size(), s_.L.owner(s_.L.p0),
                                   &timers_[size_t(cfg_.attn[size_t(l)])]);
  CpTimers& timers = *s.timers;
  const int64_t H = cfg_.num_heads, Dh = cfg_.head_dim;
  const std::vector<float> sink = w.attn_sink.to_f32();
  const float* kw = nullptr;
  int64_t nw = 0;
  if (s.am_owner) decode_tail(s, w, rope, h, cache, &kw, &nw);
  if (s.kind == AttnKind::Sliding) {  // the window lives on the tail: nothing to share
    if (!s.am_owner) return;
    o_.resize(size_t(H * Dh));
    comm::timed(timers.attend, timers.compute_cpu, [&] {
      q_.resize(size_t(H * Dh));
      attn_project_heads(cfg_, w, rope, p_.q_lat.data(), 1, &s.pos, 0, H, q_.data());
      decode_partial(q_.data(), kw, nw, nullptr, 0);
    });
    comm::timed(timers.merge, timers.compute_cpu, [&] { attn_merge(1, H, Dh, sink.data(), {&part_}, o_.data()); });
    comm::timed(timers.output, timers.compute_cpu, [&] { attn_output(cfg_, w, rope, o_.data(), 1, &s.pos, out); });
    return;
  }
  decode_share_query(s, cache);
  decode_query_heads(s, w, rope);
  int64_t nc = 0;
  const float* kc = decode_compressed_keys(s, cache, kv_src, &nc);
  comm::timed(timers.attend, timers.compute_cpu, [&] { decode_partial(q_.data(), kw, nw, kc, nc); });
  decode_merge_partials(s, sink.data());
  decode_output(s, w, rope, out);
}

// The tail: the keys, the window and the compressors (their state lives here). *kw, *nw: the
// window rows the query attends.
void CpAttention::decode_tail(const DecodeStep& s, const AttnWeights& w, const Rope& rope,
                              const float* h, LayerCache& cache, const float** kw, int64_t* nw) {
  const int64_t Dh = cfg_.head_dim, Di = cfg_.index_head_dim, pos = s.pos;
  comm::timed(s.timers->project, s.timers->compute_cpu, [&] {
    attn_project_keys(cfg_, s.l, w, rope, h, 1, &pos, kv_dtype_, &p_);
    attn_project_latent(cfg_, s.l, w, rope, h, 1, &p_);
    new_ent_.rows = KvStore(DType::F32, Dh);
    new_ent_.index.clear();
    new_key_.rows = KvStore(DType::F32, Di);
    new_key_.index.clear();
    wins_.resize(1);
    attn_advance(cfg_, s.l, w, rope, p_, Segment{pos, 1, 0}, cache, &wins_[0], &new_ent_, &new_key_);
  });
  const SegmentWindow& win = wins_[0];
  const int64_t w_lo = std::max<int64_t>(0, pos - cfg_.sliding_window + 1) - win.first_pos;
  *kw = win.rows.data() + w_lo * Dh;
  *nw = pos - win.first_pos + 1 - w_lo;
}

// The q latent, the indexer's query and the entry whose window closes at pos (if one does) go
// from the tail to every cp rank; the entry is kept by rank (index mod cp), so no rank fills
// first.
void CpAttention::decode_share_query(const DecodeStep& s, LayerCache& cache) {
  const int64_t R = cfg_.q_lora_rank, nI = cfg_.index_n_heads, Di = cfg_.index_head_dim;
  msg_.resize(size_t(s.q.size));
  if (s.am_owner) {
    std::memcpy(msg_.data() + s.q.lat, p_.q_lat.data(), size_t(R) * 4);
    if (s.scores) {
      std::memcpy(msg_.data() + s.q.iq, p_.iq.q.data(), size_t(nI * Di) * 4);
      std::memcpy(msg_.data() + s.q.iw, p_.iq.w.data(), size_t(nI) * 4);
    }
    if (s.closes) {
      MO_CHECK(new_ent_.size() == 1 && new_ent_.index[0] == s.gi, "layer ", s.l, " at ", s.pos);
      new_ent_.rows.read(0, 1, msg_.data() + s.q.ent);
      if (s.keys) new_key_.rows.read(0, 1, msg_.data() + s.q.key);
    }
  }
  if (s.P > 1) {
    comm::Timed t(comm::stats(counters_, "cp.query_bcast"), s.am_owner ? s.q.size * 4 * (s.P - 1) : 0);
    cp_.bcast(msg_.data(), s.q.size, s.owner);
  }
  if (s.closes && s.me == int(s.gi % s.P)) {
    cache.entries.append(msg_.data() + s.q.ent, 1, s.gi);
    if (s.keys) cache.idx_keys.append(msg_.data() + s.q.key, 1, s.gi);
  }
}

// q: each rank projects the heads of its output groups, then every rank gets all heads.
void CpAttention::decode_query_heads(const DecodeStep& s, const AttnWeights& w, const Rope& rope) {
  const DecodeShare& sh = s.share;
  qs_.resize(size_t(sh.nh * cfg_.head_dim));
  comm::timed(s.timers->project, s.timers->compute_cpu, [&] {
    attn_project_heads(cfg_, w, rope, msg_.data() + s.q.lat, 1, &s.pos, sh.h0, sh.nh, qs_.data());
  });
  if (s.P > 1) {
    comm::Timed t(comm::stats(counters_, "cp.q_heads"), int64_t(qs_.size() * 4) * (s.P - 1));
    cp_.allgatherv(qs_.data(), int64_t(qs_.size()), &q_);
  } else {
    q_.swap(qs_);
  }
}

// The compressed keys this rank attends: CSA the global top-k it holds, V4.1 the top-k of the
// latest index source over its kv source's store, HCA every entry it holds (all have closed).
const float* CpAttention::decode_compressed_keys(const DecodeStep& s, LayerCache& cache,
                                                 LayerCache* kv_src, int64_t* nc) {
  const int64_t Dh = cfg_.head_dim, K = cfg_.index_topk;
  if (!s.csa && !s.shared) {
    *nc = cache.entries.size();
    return cache.entries.rows.view(0, *nc, gathered_);
  }
  std::vector<int32_t> top(static_cast<size_t>(K));
  int64_t k = 0;
  if (s.csa) {
    cands_.clear();
    comm::timed(s.timers->indexer, s.timers->compute_cpu, [&] {
      indexer_candidates(cfg_, msg_.data() + s.q.iq, msg_.data() + s.q.iw, s.pos, cache.idx_keys, &cands_);
    });
    k = merge_ranks_topk(cands_, top.data(), *s.timers);
  } else {
    const std::vector<int32_t>& t = shared_decode_topk(s.l, s.pos, msg_.data() + s.q.iq, *kv_src);
    k = int64_t(t.size());
    std::copy(t.begin(), t.end(), top.begin());
  }
  // The picked entries this rank holds, from the store the layer reads.
  const EntryStore& store = s.shared ? kv_src->entries : cache.entries;
  std::vector<int32_t> rows;
  const auto& idx = store.index;
  for (int64_t i = 0; i < k; ++i) {
    auto it = std::lower_bound(idx.begin(), idx.end(), top[size_t(i)]);
    if (it != idx.end() && *it == top[size_t(i)]) rows.push_back(int32_t(it - idx.begin()));
  }
  *nc = int64_t(rows.size());
  gathered_.resize(size_t(*nc * Dh));
  store.rows.gather(rows.data(), *nc, gathered_.data());
  return gathered_.data();
}

// Every rank gets every rank's partials and merges the heads of its output groups (the sink
// counted once) into o_.
void CpAttention::decode_merge_partials(const DecodeStep& s, const float* sink) {
  const int64_t H = cfg_.num_heads, Dh = cfg_.head_dim, P = s.P;
  const DecodePartialsMsg& m = s.parts;
  const DecodeShare& sh = s.share;
  const double w0 = comm::now();
  if (P > 1) {
    std::vector<float> mine(static_cast<size_t>(m.size));
    std::memcpy(mine.data() + m.o, part_.o.data(), size_t(H * Dh) * 4);
    std::memcpy(mine.data() + m.mx, part_.mx.data(), size_t(H) * 4);
    std::memcpy(mine.data() + m.sum, part_.sum.data(), size_t(H) * 4);
    parts_buf_.resize(size_t(m.size * P));
    comm::Timed t(comm::stats(counters_, "cp.partials"), m.size * 4 * (P - 1));
    cp_.allgather(mine.data(), m.size, parts_buf_.data());
  }
  std::vector<const AttnPartials*> parts;
  rank_parts_.resize(size_t(P));
  for (int r = 0; r < P; ++r) {  // the heads of this rank's groups, from each rank
    AttnPartials& ap = rank_parts_[size_t(r)];
    const float* src = P > 1 ? parts_buf_.data() + r * m.size : nullptr;
    const float* o = P > 1 ? src + m.o : part_.o.data();
    const float* mx = P > 1 ? src + m.mx : part_.mx.data();
    const float* sum = P > 1 ? src + m.sum : part_.sum.data();
    ap.o.assign(o + sh.h0 * Dh, o + (sh.h0 + sh.nh) * Dh);
    ap.mx.assign(mx + sh.h0, mx + sh.h0 + sh.nh);
    ap.sum.assign(sum + sh.h0, sum + sh.h0 + sh.nh);
    parts.push_back(&ap);
  }
  o_.resize(size_t(sh.nh * Dh));
  attn_merge(1, sh.nh, Dh, sink + sh.h0, parts, o_.data());
  s.timers->merge += comm::now() - w0;
}

// Each rank projects its heads through its wo_a blocks; every rank gets every group's latent,
// projects its rows of wo_b, and the rows meet at the tail.
void CpAttention::decode_output(const DecodeStep& s, const AttnWeights& w, const Rope& rope,
                                float* out) {
  const DecodeShare& sh = s.share;
  const int64_t GR = cfg_.o_groups * cfg_.o_lora_rank;
  const double w0 = comm::now();
  zs_.resize(size_t((sh.g1 - sh.g0) * cfg_.o_lora_rank));
  comm::timed(s.timers->output, s.timers->compute_cpu, [&] {
    attn_output_groups(cfg_, w, rope, o_.data(), 1, &s.pos, sh.g0, sh.g1, zs_.data());
  });
  if (s.P > 1) {
    comm::Timed t(comm::stats(counters_, "cp.output"), int64_t(zs_.size() * 4) * (s.P - 1) + sh.nd * 4);
    cp_.allgatherv(zs_.data(), int64_t(zs_.size()), &z_);
    MO_CHECK(int64_t(z_.size()) == GR);
    std::vector<float> rows(static_cast<size_t>(sh.nd));
    attn_output_rows(cfg_, w, z_.data(), 1, sh.d0, sh.nd, rows.data(), sh.nd);
    std::vector<float> all;
    cp_.gatherv(rows.data(), sh.nd, &all, s.owner);
    if (s.am_owner) std::copy(all.begin(), all.end(), out);
  } else {
    attn_output_rows(cfg_, w, zs_.data(), 1, 0, cfg_.hidden_size, out, cfg_.hidden_size);
  }
  s.timers->output += comm::now() - w0;
}

}  // namespace modelone
