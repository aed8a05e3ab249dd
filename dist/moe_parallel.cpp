#include "dist/moe_parallel.h"

#include <algorithm>
#include <cstring>

#include "model/check.h"

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
}

void MoeParallel::wait(comm::Request& r) {
  const double t0 = comm::now();
  r.wait();
  timers.exchange += comm::now() - t0;
}

void MoeParallel::pack(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T,
                       MoeBatch* b) {
  const double c0 = comm::now();
  const int64_t D = cfg_.hidden_size, k = cfg_.top_k;
  const int P = ep_.size(), me = ep_.rank();
  const ExpertPlacement& pl = placement_[size_t(layer)];
  b->t0 = t0;
  b->T = T;
  // dest[i, j]: rank of the token's j-th expert; first[i, j]: the first slot going there.
  std::vector<int32_t> dest(static_cast<size_t>(T * k));
  std::vector<uint8_t> first(static_cast<size_t>(T * k));
  b->send_rows.assign(size_t(P), 0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = r.expert[size_t((t0 + i) * k + j)];
      const int d = pl.owner(e, me, t0 + i);
      dest[size_t(i * k + j)] = d;
      bool f = true;
      for (int64_t q = 0; q < j; ++q) f &= dest[size_t(i * k + q)] != d;
      first[size_t(i * k + j)] = f;
      b->send_rows[size_t(d)] += f;
      ++expert_tokens[size_t(layer)][size_t(e)];
    }
  const std::vector<int64_t> off = comm::displacements(b->send_rows);
  const int64_t n = off[size_t(P)], rb = codec_.dispatch_bytes();
  b->send.resize(size_t(n * rb));
  b->row_token.resize(size_t(n));
  std::vector<int64_t> fill(off.begin(), off.end() - 1);
  std::vector<int64_t> row_of(static_cast<size_t>(T * k), -1);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (first[size_t(i * k + j)]) row_of[size_t(i * k + j)] = fill[size_t(dest[size_t(i * k + j)])]++;
  // Encode rows in parallel: each (token, first slot) owns its row.
#pragma omp parallel for schedule(static) if (T * D > 65536)
  for (int64_t i = 0; i < T; ++i) {
    int32_t ex[64];
    float wt[64];
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
      codec_.encode_dispatch(h + (t0 + i) * D, ex, wt, b->send.data() + row * rb);
    }
  }
  timers.pack += comm::now() - c0;
  const double c1 = comm::now();
  b->recv_rows = ep_.exchange_counts(b->send_rows);
  timers.exchange += comm::now() - c1;
  timers.rows_sent += n;
  timers.bytes_sent += n * rb;
}

void MoeParallel::start_dispatch(MoeBatch* b) {
  const int64_t rb = codec_.dispatch_bytes();
  b->recv.resize(size_t(b->n_recv() * rb));
  b->req = ep_.ialltoallv_rows(b->send.data(), b->send_rows, b->recv.data(), b->recv_rows, rb);
}

void MoeParallel::run_experts(int64_t layer, const LayerWeights* w, MoeBatch* b,
                              const std::function<void()>& progress) {
  wait(b->req);
  const double c0 = comm::now();
  const int64_t D = cfg_.hidden_size, k = cfg_.top_k, n = b->n_recv();
  const int64_t rb = codec_.dispatch_bytes(), cb = codec_.combine_bytes();
  const int me = ep_.rank();
  // Rows of each local expert: (row, weight), grouped by a counting sort on the expert id.
  std::vector<int64_t> count(size_t(cfg_.n_experts + 1), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* ex = codec_.experts(b->recv.data() + i * rb);
    for (int64_t j = 0; j < k; ++j)
      if (ex[j] >= 0) {
        MO_CHECK(ex[j] < cfg_.n_experts && placement_[size_t(layer)].holds(me, ex[j]),
                 "row for expert ", ex[j], " reached rank ", me);
        ++count[size_t(ex[j]) + 1];
      }
  }
  for (int64_t e = 0; e < cfg_.n_experts; ++e) count[size_t(e + 1)] += count[size_t(e)];
  const int64_t pairs = count[size_t(cfg_.n_experts)];
  computed_pairs[size_t(layer)] += pairs;
  std::vector<int32_t> pair_row(static_cast<size_t>(pairs));
  std::vector<float> pair_w(static_cast<size_t>(pairs));
  {
    std::vector<int64_t> pos(count.begin(), count.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* row = b->recv.data() + i * rb;
      for (int64_t j = 0; j < k; ++j) {
        const int32_t e = codec_.experts(row)[j];
        if (e < 0) continue;
        const int64_t p = pos[size_t(e)]++;
        pair_row[size_t(p)] = int32_t(i);
        pair_w[size_t(p)] = codec_.weights(row)[j];
      }
    }
  }
  acc_.assign(size_t(n * D), 0.f);
  if (!w) {  // exchange-only stand-in: every expert is the identity, so a row returns as x * sum(w)
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* row = b->recv.data() + i * rb;
      float s = 0.f;
      for (int64_t j = 0; j < k; ++j) s += codec_.experts(row)[j] >= 0 ? codec_.weights(row)[j] : 0.f;
      float* o = acc_.data() + i * D;
      codec_.decode_dispatch(row, o);
      for (int64_t d = 0; d < D; ++d) o[d] *= s;
    }
  }
  for (int64_t e = 0; w && e < cfg_.n_experts; ++e) {
    const int64_t p0 = count[size_t(e)], m = count[size_t(e + 1)] - p0;
    if (m == 0) continue;
    xin_.resize(size_t(m * D));
    yout_.resize(size_t(m * D));
#pragma omp parallel for schedule(static) if (m * D > 65536)
    for (int64_t i = 0; i < m; ++i)
      codec_.decode_dispatch(b->recv.data() + int64_t(pair_row[size_t(p0 + i)]) * rb,
                             xin_.data() + i * D);
    expert_ffn(cfg_, w->experts[size_t(e)], xin_.data(), m, yout_.data());
    for (int64_t i = 0; i < m; ++i) {
      float* o = acc_.data() + int64_t(pair_row[size_t(p0 + i)]) * D;
      const float s = pair_w[size_t(p0 + i)];
      const float* src = yout_.data() + i * D;
      for (int64_t d = 0; d < D; ++d) o[d] += s * src[d];
    }
    if (progress) progress();
  }
  b->out.resize(size_t(n * cb));
#pragma omp parallel for schedule(static) if (n * D > 65536)
  for (int64_t i = 0; i < n; ++i) codec_.encode_combine(acc_.data() + i * D, b->out.data() + i * cb);
  timers.experts += comm::now() - c0;
}

void MoeParallel::start_combine(MoeBatch* b) {
  const int64_t cb = codec_.combine_bytes();
  b->back.resize(size_t(b->n_send() * cb));
  b->req = ep_.ialltoallv_rows(b->out.data(), b->recv_rows, b->back.data(), b->send_rows, cb);
}

void MoeParallel::finish_combine(MoeBatch* b, float* y) {
  wait(b->req);
  const double c0 = comm::now();
  const int64_t D = cfg_.hidden_size, cb = codec_.combine_bytes(), n = b->n_send();
  for (int64_t row = 0; row < n; ++row)
    codec_.add_combine(b->back.data() + row * cb, y + (b->t0 + b->row_token[size_t(row)]) * D);
  timers.combine += comm::now() - c0;
}

void MoeParallel::forward(int64_t layer, const LayerWeights& w, const float* h, int64_t T,
                          const int32_t* ids, float* y) {
  const double c0 = comm::now();
  Routing r;
  route(cfg_, layer, w, h, T, ids, &r);
  timers.route += comm::now() - c0;

  const int nb = opt_.overlap ? 2 : 1;
  const int64_t half = opt_.overlap ? (T + 1) / 2 : T;
  for (int i = 0; i < nb; ++i) {
    const int64_t t0 = i * half;
    pack(layer, r, h, t0, std::max<int64_t>(0, std::min(half, T - t0)), &batches_[i]);
    start_dispatch(&batches_[i]);
  }
  // While one micro-batch computes, the other's exchange is driven from the expert loop.
  for (int i = 0; i < nb; ++i) {
    MoeBatch& other = batches_[1 - i];
    run_experts(layer, &w, &batches_[i], [&] { if (nb == 2) other.req.test(); });
    start_combine(&batches_[i]);
  }
  // Home rank: the shared expert (overlapping the combines in flight), then the routed results.
  const double c1 = comm::now();
  if (w.shared.loaded()) expert_ffn(cfg_, w.shared, h, T, y);
  else std::memset(y, 0, size_t(T * cfg_.hidden_size) * 4);
  timers.experts += comm::now() - c1;
  for (int i = 0; i < nb; ++i) finish_combine(&batches_[i], y);
}

}  // namespace modelone
