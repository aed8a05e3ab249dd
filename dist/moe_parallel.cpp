#include "dist/moe_parallel.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "model/base/check.h"
#include "model/kernels/linear.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

int64_t MoeBatch::n_send() const {
  int64_t n = 0;
  for (auto c : send_rows) n += c;
  return n;
}

int64_t MoeBatch::n_recv() const {
  int64_t n = 0;
  for (auto c : recv_rows) n += c;
  return n;
}

MoeParallel::MoeParallel(const ModelConfig& cfg, const comm::Comm& ep,
                         std::vector<ExpertPlacement> placement, MoeOptions opt)
    : cfg_(cfg), ep_(ep), placement_(std::move(placement)), opt_(opt),
      codec_(cfg.hidden_size, cfg.top_k, opt.dispatch, opt.combine) {
  MO_CHECK(int64_t(placement_.size()) == cfg.num_layers, "one placement per layer");
  expert_tokens.assign(size_t(cfg.num_layers), std::vector<int64_t>(size_t(cfg.n_experts), 0));
  computed_pairs.assign(size_t(cfg.num_layers), 0);
  bool shm = opt_.transport == Transport::Shm;
  if (opt_.transport != Transport::Mpi) {
    const bool one_node = comm::on_one_node(ep);
    MO_REQUIRE(one_node || opt_.transport != Transport::Shm,
               "--ep-transport shm: the expert-parallel group spans several nodes");
    shm = one_node;
  }
  if (shm) {
    // Per rank: header (more flag, rows per destination), then its dispatch rows, then the
    // combine rows its experts' owners write back. A token sends at most one row per rank.
    MO_REQUIRE(opt_.shm_round_tokens > 0, "shared-memory round must hold at least one token");
    const int64_t P = ep.size();
    shm_rows_ = opt_.shm_round_tokens * std::min<int64_t>(cfg.top_k, P);
    auto align = [](size_t n) { return (n + 63) / 64 * 64; };
    shm_rows_off_ = align(size_t(8 * (1 + P)));
    shm_results_off_ = shm_rows_off_ + align(size_t(shm_rows_ * codec_.dispatch_bytes()));
    const size_t bytes = shm_results_off_ + size_t(shm_rows_ * codec_.combine_bytes());
    try {
      window_ = comm::SharedWindow(ep, bytes);
    } catch (const comm::CommError& e) {
      // Not enough shared memory (a small /dev/shm, say): auto falls back to MPI all-to-all.
      MO_REQUIRE(opt_.transport != Transport::Shm, "--ep-transport shm: ", e.what());
      window_ = comm::SharedWindow();
    }
    // Every rank must agree on the transport.
    const int ok = ep.allreduce(window_.valid() ? 1 : 0, comm::Op::Min);
    if (!ok) window_ = comm::SharedWindow();
  }
}

void MoeParallel::wait(comm::Request& r) {
  const double t0 = comm::now();
  r.wait();
  timers.exchange += comm::now() - t0;
}

void MoeParallel::layout(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T,
                         MoeBatch* b, uint8_t* rows) {
  const double c0 = comm::now();
  const int64_t D = cfg_.hidden_size, k = cfg_.top_k;
  const int P = ep_.size(), me = ep_.rank();
  const ExpertPlacement& pl = placement_[size_t(layer)];
  b->t0 = t0;
  b->T = T;
  b->received = false;
  // dest[i, j]: rank of the token's j-th expert; row_of[i, j] >= 0 on the first slot going there.
  // Member scratch, kept between calls: a decode step's exchange is a few microseconds, and
  // fresh allocations were a visible part of it.
  std::vector<int32_t>& dest = dest_;
  std::vector<int64_t>& row_of = row_of_;
  dest.resize(size_t(T * k));
  row_of.assign(size_t(T * k), -1);
  b->send_rows.assign(size_t(P), 0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = r.expert[size_t((t0 + i) * k + j)];
      const int d = pl.owner(e, me, t0 + i);
      dest[size_t(i * k + j)] = d;
      bool first = true;
      for (int64_t q = 0; q < j; ++q) first &= dest[size_t(i * k + q)] != d;
      if (first) row_of[size_t(i * k + j)] = b->send_rows[size_t(d)]++;
      ++expert_tokens[size_t(layer)][size_t(e)];
    }
  std::vector<int64_t>& off = off_;
  off.assign(size_t(P) + 1, 0);
  for (int q = 0; q < P; ++q) off[size_t(q + 1)] = off[size_t(q)] + b->send_rows[size_t(q)];
  const int64_t n = off[size_t(P)], rb = codec_.dispatch_bytes();
  if (!rows) {  // MPI: the send buffer; shm: the caller's segment
    b->send.resize(size_t(n * rb));
    rows = b->send.data();
  }
  for (int64_t i = 0; i < T * k; ++i)
    if (row_of[size_t(i)] >= 0) row_of[size_t(i)] += off[size_t(dest[size_t(i)])];
  b->row_token.resize(size_t(n));
  // Encode rows in parallel: each (token, first slot) owns its row. (No OpenMP region at all for
  // decode-sized batches: entering one costs about a microsecond even with one thread.)
  auto encode = [&](int64_t i) {
    static thread_local std::vector<int32_t> ex;  // top_k entries: sized by the config
    static thread_local std::vector<float> wt;
    ex.resize(size_t(k));
    wt.resize(size_t(k));
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = row_of[size_t(i * k + j)];
      if (row < 0) continue;
      const int d = dest[size_t(i * k + j)];
      for (int64_t q = 0; q < k; ++q) {  // the experts of this token that rank d runs
        const bool here = dest[size_t(i * k + q)] == d;
        ex[q] = here ? r.expert[size_t((t0 + i) * k + q)] : -1;
        wt[q] = here ? r.weight[size_t((t0 + i) * k + q)] : 0.f;
      }
      b->row_token[size_t(row)] = int32_t(i);
      codec_.encode_dispatch(h + (t0 + i) * D, ex.data(), wt.data(), rows + row * rb);
    }
  };
  if (T * D > 65536) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < T; ++i) encode(i);
  } else {
    for (int64_t i = 0; i < T; ++i) encode(i);
  }
  timers.pack += comm::now() - c0;
  timers.rows_sent += n;
  timers.bytes_sent += n * rb;
}

// The (row, weight) pairs of each local expert, grouped by a counting sort on the expert id.
ExpertPairs MoeParallel::group_pairs(int64_t layer, const MoeBatch& b) const {
  const int64_t k = cfg_.top_k, n = int64_t(b.in_rows.size());
  const int me = ep_.rank();
  const auto& in = b.in_rows;
  ExpertPairs P;
  P.offset.assign(size_t(cfg_.n_experts + 1), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = codec_.experts(in[size_t(i)])[j];
      if (e < 0) continue;
      MO_CHECK(e < cfg_.n_experts && placement_[size_t(layer)].holds(me, e), "row for expert ",
               e, " reached rank ", me);
      ++P.offset[size_t(e) + 1];
    }
  for (int64_t e = 0; e < cfg_.n_experts; ++e) P.offset[size_t(e + 1)] += P.offset[size_t(e)];
  const int64_t pairs = P.offset[size_t(cfg_.n_experts)];
  P.row.resize(size_t(pairs));
  P.weight.resize(size_t(pairs));
  std::vector<int64_t> pos(P.offset.begin(), P.offset.end() - 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = codec_.experts(in[size_t(i)])[j];
      if (e < 0) continue;
      const int64_t p = pos[size_t(e)]++;
      P.row[size_t(p)] = int32_t(i);
      P.weight[size_t(p)] = codec_.weights(in[size_t(i)])[j];
    }
  return P;
}

// Decode-sized (or fp32): one expert at a time, each product on all threads.
void MoeParallel::run_each_expert(const LayerWeights* w, const MoeBatch& b, const ExpertPairs& P,
                                  const std::function<void()>& progress) {
  const int64_t D = cfg_.hidden_size;
  const auto& in = b.in_rows;
  for (int64_t e = 0; e < cfg_.n_experts; ++e) {
    const int64_t p0 = P.offset[size_t(e)], m = P.offset[size_t(e + 1)] - p0;
    if (m == 0) continue;
    xin_.resize(size_t(m * D));
    yout_.resize(size_t(m * D));
    const int nt = m * D > 65536 ? threads_here() : 1;
    parallel_for(m, nt, [&](int64_t i) { codec_.decode_dispatch(in[size_t(P.row[size_t(p0 + i)])], xin_.data() + i * D); });
    expert_ffn(cfg_, w->experts[size_t(e)], xin_.data(), m, yout_.data());
    // An expert sees each row at most once, so its rows can be accumulated in parallel.
    parallel_for(m, nt, [&](int64_t i) {
      float* o = acc_.data() + int64_t(P.row[size_t(p0 + i)]) * D;
      const float s = P.weight[size_t(p0 + i)];
      const float* src = yout_.data() + i * D;
      for (int64_t d = 0; d < D; ++d) o[d] += s * src[d];
    });
    if (progress) progress();
  }
}

void MoeParallel::run_experts(int64_t layer, const LayerWeights* w, MoeBatch* b,
                              const std::function<void()>& progress) {
  if (!window_.valid()) finish_dispatch_mpi(b);
  const double c0 = comm::now();
  const int64_t D = cfg_.hidden_size, k = cfg_.top_k, n = int64_t(b->in_rows.size());
  const auto& in = b->in_rows;
  acc_.assign(size_t(n * D), 0.f);
  if (!w) {  // exchange-only stand-in: every expert is the identity, so a row returns as x * sum(w)
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float s = 0.f;
      for (int64_t j = 0; j < k; ++j) s += codec_.experts(in[size_t(i)])[j] >= 0 ? codec_.weights(in[size_t(i)])[j] : 0.f;
      float* o = acc_.data() + i * D;
      codec_.decode_dispatch(in[size_t(i)], o);
      for (int64_t d = 0; d < D; ++d) o[d] *= s;
    }
  } else {
    const ExpertPairs P = group_pairs(layer, *b);
    computed_pairs[size_t(layer)] += P.offset.back();
    if (opt_.grouped_experts && compute_mode() == Compute::BF16 && P.max_rows() > kGemvMaxRows) {
      // Prefill-sized: every expert's rows in one grouped product (model/blocks/moe_grouped.h).
      xin_.resize(size_t(n * D));
      parallel_for(n, n * D > 65536 ? threads_here() : 1,
                   [&](int64_t i) { codec_.decode_dispatch(in[size_t(i)], xin_.data() + i * D); });
      grouped_experts_bf16(cfg_, w->experts, P, xin_.data(), acc_.data(), progress);
    } else {
      run_each_expert(w, *b, P, progress);
    }
  }
  parallel_for(n, n * D > 65536 ? threads_here() : 1,
               [&](int64_t i) { codec_.encode_combine(acc_.data() + i * D, b->out_rows[size_t(i)]); });
  timers.experts += comm::now() - c0;
}

void MoeParallel::add_rows(const MoeBatch& b, const uint8_t* rows, float* y) {
  const double c0 = comm::now();
  const int64_t D = cfg_.hidden_size, cb = codec_.combine_bytes();
  const int64_t n = int64_t(b.row_token.size());
  // Rows of one token can come from several ranks: split the work by token, not by row.
  if (n * D > 65536) {
#pragma omp parallel
    {
      const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
      for (int64_t row = 0; row < n; ++row) {
        const int64_t t = b.t0 + b.row_token[size_t(row)];
        if (t % nt == id) codec_.add_combine(rows + row * cb, y + t * D);
      }
    }
  } else {
    for (int64_t row = 0; row < n; ++row)
      codec_.add_combine(rows + row * cb, y + (b.t0 + b.row_token[size_t(row)]) * D);
  }
  timers.combine += comm::now() - c0;
}

void MoeParallel::dispatch(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T,
                           MoeBatch* b) {
  if (window_.valid()) {
    dispatch_shm(layer, r, h, t0, T, b);
    return;
  }
  layout(layer, r, h, t0, T, b, nullptr);
  start_dispatch_mpi(b);
  finish_dispatch_mpi(b);
}

void MoeParallel::combine(MoeBatch* b, float* y) {
  if (window_.valid()) {
    combine_shm(b, y);
    return;
  }
  start_combine_mpi(b);
  finish_combine_mpi(b, y);
}

void MoeParallel::forward(int64_t layer, const LayerWeights& w, const float* h, int64_t T,
                          const int32_t* ids, float* y, bool shared_done) {
  const double c0 = comm::now();
  Routing r;
  route(cfg_, layer, w, h, T, ids, &r);
  timers.route += comm::now() - c0;
  auto shared = [&] {
    if (shared_done) return;
    const double c1 = comm::now();
    if (w.shared.loaded()) expert_ffn(cfg_, w.shared, h, T, y);
    else std::memset(y, 0, size_t(T * cfg_.hidden_size) * 4);
    timers.experts += comm::now() - c1;
  };

  if (window_.valid()) {
    // Shared memory: rounds of at most shm_round_tokens per rank, until no rank has tokens left.
    shared();
    MoeBatch& b = batches_[0];
    int64_t t0 = 0;
    do {
      const int64_t n = std::min(opt_.shm_round_tokens, T - t0);
      dispatch_shm(layer, r, h, t0, n, &b);
      run_experts(layer, &w, &b, nullptr);
      combine_shm(&b, y);
      t0 += n;
    } while (b.more);
    return;
  }

  const int nb = opt_.overlap ? 2 : 1;
  const int64_t half = opt_.overlap ? (T + 1) / 2 : T;
  for (int i = 0; i < nb; ++i) {
    const int64_t t0 = i * half;
    layout(layer, r, h, t0, std::max<int64_t>(0, std::min(half, T - t0)), &batches_[i], nullptr);
    start_dispatch_mpi(&batches_[i]);
  }
  // While one micro-batch computes, the other's exchange is driven from the expert loop.
  for (int i = 0; i < nb; ++i) {
    MoeBatch& other = batches_[1 - i];
    run_experts(layer, &w, &batches_[i], [&] { if (nb == 2) other.req.test(); });
    start_combine_mpi(&batches_[i]);
  }
  shared();  // overlaps the combines in flight
  for (int i = 0; i < nb; ++i) finish_combine_mpi(&batches_[i], y);
}

}  // namespace modelone
