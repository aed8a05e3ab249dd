#include "dist/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "model/base/check.h"
#include "model/base/even_split.h"
#include "model/blocks/engram.h"
#include "model/blocks/engram_hash.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"
#include "model/blocks/mhc.h"

namespace modelone {

Engine::Engine(const ModelConfig& cfg, const RankGrid& grid, ModelWeights weights,
               std::vector<ExpertPlacement> placement, EngineOptions opt,
               std::unique_ptr<EngramStore> engram)
    : cfg_(cfg), grid_(grid), w_(std::move(weights)), opt_(opt), rope_main_(cfg.rope_main),
      rope_compress_(cfg.rope_compress), moe_(cfg, grid.ep_comm, std::move(placement), opt.moe),
      cp_(cfg, grid.cp_comm, opt.kv_dtype, &counters_), engram_(std::move(engram)) {
  MO_REQUIRE(opt_.prefill_chunk > 0, "--prefill-chunk must be positive");
  if (engram_) engram_->set_counters(&counters_);
  if (const char* f = std::getenv("MODELONE_INJECT_FAULT")) {
    char mode[8] = "";
    const int n = std::sscanf(f, "%d:%ld:%7s", &fault_rank_, &fault_layer_, mode);
    fault_stray_ = n == 3 && std::string(mode) == "stray";
    MO_REQUIRE(n == 2 || fault_stray_, "MODELONE_INJECT_FAULT must be RANK:LAYER[:stray], got '", f, "'");
  }
  reset();
}

void Engine::reset() {
  caches_ = make_layer_caches(cfg_, opt_.kv_dtype);
  cp_.reset();
  tokens_.clear();
  chist_.clear();
  last_logits_.clear();
}

SequenceState Engine::save_sequence() const {
  return {caches_, tokens_, chist_, last_logits_, cp_.seq_pos()};
}

void Engine::restore_sequence(const SequenceState& s) {
  caches_ = s.caches;
  tokens_ = s.tokens;
  chist_ = s.chist;
  last_logits_ = s.last_logits;
  cp_.set_seq_pos(s.cp);
}

void Engine::reserve(int64_t n) {
  const int64_t P = grid_.cp_comm.size();
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    LayerCache& c = caches_[size_t(l)];
    if (c.entries.rows.width() == 0) continue;  // no store in this layer
    // Prefill steps and decode's round-robin both spread the entries evenly; 1/8 slack.
    const int64_t rows = n / cfg_.compress_rate(l) / P, slack = rows / 8 + 64;
    c.entries.reserve(rows + slack);
    if (c.idx_keys.rows.width() > 0) c.idx_keys.reserve(rows + slack);
  }
}

void Engine::append_tokens(const int32_t* ids, int64_t n) {
  tokens_.insert(tokens_.end(), ids, ids + n);
  if (engram_)
    for (int64_t i = 0; i < n; ++i) chist_.push_back(engram_->compress(ids[i]));
}

void Engine::engram_begin(const StepLayout& L) {
  std::vector<EngramSegment> segs;
  if (L.phase != Phase::Idle)
    for (const Segment& s : L.segs[size_t(grid_.cp_comm.rank())]) segs.push_back({chist_.data(), s.pos, s.n});
  engram_begin(segs);
}

void Engine::engram_begin(const std::vector<EngramSegment>& segs) {
  if (!engram_) return;
  const double t0 = comm::now();
  const EngramConfig& ec = cfg_.engram;
  const int64_t C = ec.columns();
  eng_rows_.resize(size_t(engram_->tables()));
  for (int64_t k = 0; k < engram_->tables(); ++k) {
    std::vector<int64_t>& rows = eng_rows_[size_t(k)];
    rows.clear();
    for (const EngramSegment& s : segs) {
      // Each position hashes the compressed ids before it, across block and step boundaries.
      const size_t at = rows.size();
      rows.resize(at + size_t(s.n * C));
      engram_rows(engram_->hash(k), ec.n_heads, s.chist, s.pos, s.n, engram_->pad_id(), rows.data() + at);
    }
    if (engram_->options().prefetch) engram_->request(k, rows);
  }
  timers_.engram += comm::now() - t0;
}

void Engine::engram_apply(int64_t k, int64_t T, float* x) {
  const double t0 = comm::now();
  if (!engram_->options().prefetch) engram_->request(k, eng_rows_[size_t(k)]);
  const int64_t dim = cfg_.engram.dim();
  eng_e_.resize(size_t(std::max<int64_t>(T, 1) * dim));
  engram_->wait(k, eng_e_.data());
  const EngramWeights& w = w_.layers[size_t(cfg_.engram.layers[size_t(k)])].engram;
  const comm::Comm& cp = grid_.cp_comm;
  if (decode_tail_ < 0 || cp.size() == 1) {
    engram_forward(cfg_, w, eng_e_.data(), T, x, &eng_kv_);
  } else {
    // Decode: the new token's wkv product is the largest read of the block, and the other cp
    // ranks would wait anyway; each computes a slice of its rows and the tail gates.
    const int P = cp.size(), me = cp.rank();
    const EvenSplit rows(w.wkv.rows(), P);
    const int64_t n = rows.count(me), r0 = rows.begin(me);
    cp.bcast(eng_e_.data(), dim, decode_tail_);
    eng_part_.resize(size_t(n));
    linear(eng_e_.data(), 1, dim, w.wkv, r0, n, eng_part_.data(), n);
    cp.gatherv(eng_part_.data(), n, &eng_kv_, decode_tail_);
    if (me == decode_tail_) engram_gate(cfg_, w, eng_kv_.data(), 1, x);
  }
  timers_.engram += comm::now() - t0;
}

size_t Engine::cache_bytes() const {
  size_t b = 0;
  for (auto& c : caches_) b += c.bytes();
  return b;
}

void Engine::collapse_site(const HcSite& site, const float* x, int64_t T, float* h, float* post,
                           float* comb) {
  if (!cfg_.v41()) {
    hc_pre(cfg_, site, x, T, h, post, comb);
    return;
  }
  // V4.1 collapses each site with the pre-mix the site before it made (mhc.h).
  pre_next_.resize(size_t(T * cfg_.hc_mult));
  hc_mix(cfg_, site, x, T, pre_next_.data(), post, comb);
  hc_collapse(x, T, cfg_.hc_mult, cfg_.hidden_size, pre_.data(), h);
  pre_.swap(pre_next_);
}

void Engine::layer_forward(int64_t l, const int32_t* tokens, int64_t T, bool attend, float* x) {
  const int64_t D = cfg_.hidden_size, hc = cfg_.hc_mult;
  const LayerWeights& lw = w_.layers[size_t(l)];
  const float eps = float(cfg_.rms_norm_eps);
  if (l == fault_layer_ && grid_.world.rank() == fault_rank_) {
    if (fault_stray_) grid_.world.barrier();  // never returns: the others do not join
    fail("injected fault in layer ", l, " (MODELONE_INJECT_FAULT)");
  }
  h_.resize(size_t(std::max<int64_t>(T, 1) * D));  // a decode split receives the tail's row
  out_.resize(size_t(T * D));
  post_.resize(size_t(T * hc));
  comb_.resize(size_t(T * hc * hc));
  float *h = h_.data(), *out = out_.data(), *post = post_.data(), *comb = comb_.data();

  // Engram: the fetched memory gated into every stream before the block reads them.
  if (engram_)
    if (const int64_t k = cfg_.engram.index_of(l); k >= 0) engram_apply(k, T, x);

  // Attention site: every rank of an active cp group takes part, with or without rows.
  const HcSite attn_site{lw.hc_attn_fn, lw.hc_attn_base, lw.hc_attn_scale};
  const HcSite ffn_site{lw.hc_ffn_fn, lw.hc_ffn_base, lw.hc_ffn_scale};
  collapse_site(attn_site, x, T, h, post, comb);
  const std::vector<float> an = lw.attn_norm.to_f32();
  rms_norm_rows(h, T, D, D, eps, an.data());
  if (attend) {
    const Rope& rope = cfg_.attn[size_t(l)] == AttnKind::Sliding ? rope_main_ : rope_compress_;
    const double t0 = comm::now();
    const int64_t src = cfg_.v41() ? cfg_.shared.kv_of[size_t(l)] : -1;  // V4.1's shared cache
    if (batch_) batch_attention(l, rope, h, out);
    else cp_.forward(l, lw.attn, rope, h, caches_[size_t(l)], out, src >= 0 ? &caches_[size_t(src)] : nullptr);
    timers_.attention += comm::now() - t0;
  }
  hc_post(T, hc, D, out, post, comb, x);

  // FFN site: the MoE runs over the ep group even when this rank has no tokens.
  collapse_site(ffn_site, x, T, h, post, comb);
  const std::vector<float> fn = lw.ffn_norm.to_f32();
  rms_norm_rows(h, T, D, D, eps, fn.data());
  const double t0 = comm::now();
  // Decode: the shared expert is the tail's largest dense read; the cp group splits it.
  const bool split = decode_tail_ >= 0 && grid_.cp_comm.size() > 1 && lw.shared.loaded();
  if (split) split_.shared_expert(cfg_, grid_.cp_comm, decode_tail_, lw.shared, h, out);
  moe_.forward(l, lw, h, T, tokens, out, split);
  timers_.moe += comm::now() - t0;
  hc_post(T, hc, D, out, post, comb, x);
}

float* Engine::embed_rows(int64_t T) {
  const int64_t D = cfg_.hidden_size, hc = cfg_.hc_mult;
  // Residual streams x[T, hc, D]: the embedding copied into every stream.
  x_.resize(size_t(T * hc * D));
  float* x = x_.data();
  for (int64_t t = 0; t < T; ++t) {
    w_.embed.rows_f32(ids_[size_t(t)], 1, x + t * hc * D);
    for (int64_t i = 1; i < hc; ++i)
      std::memcpy(x + (t * hc + i) * D, x + t * hc * D, size_t(D) * 4);
  }
  // V4.1's first collapse takes stream 0 alone.
  pre_.assign(size_t(T * hc), 0.f);
  for (int64_t t = 0; t < T; ++t) pre_[size_t(t * hc)] = 1.f;
  return x;
}

void Engine::final_rows(const float* x, int64_t t0, int64_t n, float* y) {
  const int64_t D = cfg_.hidden_size, hc = cfg_.hc_mult;
  const float* xr = x + t0 * hc * D;
  if (cfg_.v41()) hc_collapse(xr, n, hc, D, pre_.data() + t0 * hc, y);
  else hc_head(cfg_, w_.hc_head_fn, w_.hc_head_base, w_.hc_head_scale, xr, n, y);
  const std::vector<float> nw = w_.norm.to_f32();
  rms_norm_rows(y, n, D, D, float(cfg_.rms_norm_eps), nw.data());
}

void Engine::step(const StepLayout& L, bool all_logits, std::vector<float>* rows) {
  const int64_t D = cfg_.hidden_size, hc = cfg_.hc_mult;
  const int me = grid_.cp_comm.rank();
  const int64_t T = L.phase == Phase::Idle ? 0 : L.rows[size_t(me)];
  ids_.clear();
  if (L.phase != Phase::Idle)
    for (const Segment& s : L.segs[size_t(me)])
      ids_.insert(ids_.end(), tokens_.begin() + s.pos, tokens_.begin() + s.pos + s.n);
  float* x = embed_rows(T);
  if (opt_.capture_hidden) {
    hidden_.clear();
    hidden_.emplace_back(x, x + T * hc * D);
  }
  decode_tail_ = L.phase == Phase::Decode ? L.tail() : -1;
  engram_begin(L);
  cp_.begin_step(L);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    layer_forward(l, ids_.data(), T, L.phase != Phase::Idle, x);
    if (opt_.capture_hidden) hidden_.emplace_back(x, x + T * hc * D);
  }
  cp_.end_step();
  const double t0 = comm::now();
  if (L.phase != Phase::Idle) head(L, x, T, all_logits, rows);
  timers_.head += comm::now() - t0;
}

void Engine::head(const StepLayout& L, const float* x, int64_t T, bool all_logits,
                  std::vector<float>* rows) {
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  const comm::Comm& cp = grid_.cp_comm;
  const int me = cp.rank(), tail = L.tail(), P = cp.size();
  // Final hyper head and norm: y[n, D] for this rank's rows (all of them for all_logits), and
  // the newest position's row on every rank of the group.
  y_.resize(size_t(D));
  if (me == tail) final_rows(x, T - 1, 1, y_.data());
  if (P > 1) cp.bcast(y_.data(), D, tail);
  if (opt_.capture_hidden && !all_logits && me == tail) hidden_.emplace_back(y_.begin(), y_.end());
  // The newest position's logits, the head split over the group by vocabulary rows: on a
  // decode step the head is the largest weight read, and the other ranks would wait anyway.
  std::vector<int64_t> cnt(static_cast<size_t>(P));
  const EvenSplit vocab(V, P);
  for (int r = 0; r < P; ++r) cnt[size_t(r)] = vocab.count(r);
  const int64_t v0 = vocab.begin(me);
  logits_.resize(size_t(cnt[size_t(me)]));
  linear(y_.data(), 1, D, w_.head, v0, cnt[size_t(me)], logits_.data(), cnt[size_t(me)]);
  if (P > 1) {
    cp.allgatherv(logits_.data(), cnt[size_t(me)], &last_logits_);
  } else {
    last_logits_.swap(logits_);
  }
  if (!all_logits) return;

  // Every row's logits, in position order, at cp rank 0.
  std::vector<float> y(static_cast<size_t>(T * D));
  final_rows(x, 0, T, y.data());
  if (opt_.capture_hidden) hidden_.emplace_back(y.begin(), y.end());
  logits_.resize(size_t(T * V));
  linear(y.data(), T, D, w_.head, 0, V, logits_.data(), V);
  std::vector<float> all;
  if (P > 1) cp.gatherv(logits_.data(), T * V, &all, 0);
  else all.swap(logits_);
  if (me != 0) return;
  std::vector<float> ordered(size_t(L.n * V));
  const float* src = all.data();
  for (const auto& segs : L.segs)
    for (const Segment& s : segs) {
      std::memcpy(ordered.data() + (s.pos - L.p0) * V, src, size_t(s.n * V) * 4);
      src += s.n * V;
    }
  if (prefill_opt_.on_logits) prefill_opt_.on_logits(L.p0, L.n, ordered.data());
  else rows->insert(rows->end(), ordered.begin(), ordered.end());
}

std::vector<float> Engine::prefill(const std::vector<int32_t>& ids, const PrefillOptions& opt) {
  const int64_t V = cfg_.vocab_size;
  for (size_t t = 0; t < ids.size(); ++t)
    MO_REQUIRE(ids[t] >= 0 && ids[t] < V, "token id ", ids[t], " at position ",
               position() + int64_t(t), " is outside the vocabulary [0, ", V, ")");
  const int cp = grid_.cp_comm.size();
  const int64_t per_step = opt_.prefill_chunk * cp, n = int64_t(ids.size());
  // Every dp group runs as many steps as the longest prompt needs (the MoE exchanges pair up).
  const int64_t steps = grid_.world.allreduce((n + per_step - 1) / per_step, comm::Op::Max);
  const int64_t p0 = position();
  append_tokens(ids.data(), n);
  prefill_opt_ = opt;
  std::vector<float> rows;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t a = std::min(n, s * per_step), b = std::min(n, a + per_step);
    const StepLayout L = b > a ? prefill_layout(p0 + a, b - a, cp, opt_.cp_layout) : idle_layout(cp);
    step(L, opt.all_logits, &rows);
    if (opt.on_step) opt.on_step(b, n);
  }
  prefill_opt_ = {};
  return rows;
}

void Engine::decode(const int32_t* token) {
  const int cp = grid_.cp_comm.size();
  if (!token) {
    step(idle_layout(cp), false, nullptr);
    return;
  }
  MO_REQUIRE(*token >= 0 && *token < cfg_.vocab_size, "token id ", *token, " at position ",
             position(), " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  append_tokens(token, 1);
  step(decode_layout(position() - 1, cp, cp_.tail()), false, nullptr);
}

std::vector<int32_t> Engine::generate(int64_t n, bool ignore_eos,
                                      const std::function<void(int64_t i)>& on_token,
                                      const std::function<void(int32_t tok)>& on_new,
                                      const TokenPolicy& policy) {
  std::vector<int32_t> out;
  bool done = last_logits_.empty();  // a group without a sequence only idles along
  // NaN or infinite logits (NaN weights, an overflow) would pick token 0 forever without a word.
  auto finite = [&] {
    return std::all_of(last_logits_.begin(), last_logits_.end(), [](float v) { return std::isfinite(v); });
  };
  auto stop_if_not_finite = [&] {
    comm::agree(grid_.world, [&] {
      MO_REQUIRE(finite(), "the logits at position ", position() - 1, " are not finite (NaN or "
                 "infinity): the checkpoint's weights or the config's values give no usable numbers");
    });
  };
  if (n == 0) stop_if_not_finite();
  for (int64_t i = 0; i < n; ++i) {
    int32_t tok = 0;
    int state = 0;  // 0: done, 1: generating, 2: non-finite logits; the world takes the max
    if (!done) {
      state = finite() ? 1 : 2;
      tok = policy.choose && state == 1
                ? policy.choose(last_logits_)
                : int32_t(std::max_element(last_logits_.begin(), last_logits_.end()) - last_logits_.begin());
      out.push_back(tok);
      if (on_new && state == 1) on_new(tok);
      // The stop policy sees every token (its text), the last one included.
      const bool stopped = policy.stop && state == 1 && policy.stop(tok);
      done = stopped || (!ignore_eos && tok == cfg_.eos_token_id) || i + 1 == n;
      if (done && state == 1) state = 0;
    }
    if (on_token && state < 2) on_token(i);
    // Decode steps go on while any dp group still generates; the same reduction carries the
    // non-finite flag, so checking costs nothing.
    const int64_t world_state = grid_.world.allreduce(int64_t(state), comm::Op::Max);
    if (world_state == 2) stop_if_not_finite();
    if (world_state == 0) break;
    decode(done ? nullptr : &tok);
  }
  return out;
}

}  // namespace modelone
