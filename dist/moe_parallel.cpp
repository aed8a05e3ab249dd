#include "dist/moe_parallel.h"

#include <cstring>

#include "model/check.h"
#include "model/moe.h"

namespace modelone {

MoeParallel::MoeParallel(const ModelConfig& cfg, const comm::Comm& ep, ExpertPlacement placement)
    : cfg_(cfg), ep_(ep), placement_(std::move(placement)) {
  row_bytes_ = cfg.hidden_size * 4 + cfg.top_k * 8;
}

void MoeParallel::forward(int64_t layer, const LayerWeights& w, const float* h, int64_t T,
                          const int32_t* ids, float* y) {
  const int64_t D = cfg_.hidden_size, k = cfg_.top_k;
  const int P = ep_.size(), me = ep_.rank();
  double t0 = comm::now();

  Routing r;
  route(cfg_, layer, w, h, T, ids, &r);
  double t1 = comm::now();
  timers.route += t1 - t0;

  // Layout: for each token, the ranks its experts live on (each rank once).
  DispatchLayout lay;
  lay.send_rows.assign(size_t(P), 0);
  std::vector<int32_t> dest(static_cast<size_t>(T * k));  // rank of each (token, slot)
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int d = placement_.owner(r.expert[size_t(t * k + j)], me);
      dest[size_t(t * k + j)] = d;
      bool first = true;
      for (int64_t i = 0; i < j; ++i) first &= dest[size_t(t * k + i)] != d;
      if (first) ++lay.send_rows[size_t(d)];
    }
  const std::vector<int64_t> off = comm::displacements(lay.send_rows);
  const int64_t n_send = off[size_t(P)];
  send_.resize(size_t(n_send * row_bytes_));
  lay.row_token.resize(size_t(n_send));
  std::vector<int64_t> fill(off.begin(), off.end() - 1);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int d = dest[size_t(t * k + j)];
      bool first = true;
      for (int64_t i = 0; i < j; ++i) first &= dest[size_t(t * k + i)] != d;
      if (!first) continue;
      const int64_t row = fill[size_t(d)]++;
      lay.row_token[size_t(row)] = int32_t(t);
      uint8_t* p = send_.data() + row * row_bytes_;
      std::memcpy(p, h + t * D, size_t(D) * 4);
      auto* ex = reinterpret_cast<int32_t*>(p + D * 4);
      auto* wt = reinterpret_cast<float*>(p + D * 4 + k * 4);
      for (int64_t i = 0; i < k; ++i) {  // the experts of this token that rank d runs
        const bool here = dest[size_t(t * k + i)] == d;
        ex[i] = here ? r.expert[size_t(t * k + i)] : -1;
        wt[i] = here ? r.weight[size_t(t * k + i)] : 0.f;
      }
    }
  double t2 = comm::now();
  timers.pack += t2 - t1;

  // Dispatch.
  lay.recv_rows = ep_.exchange_counts(lay.send_rows);
  const int64_t n_recv = comm::displacements(lay.recv_rows)[size_t(P)];
  recv_.resize(size_t(n_recv * row_bytes_));
  ep_.alltoallv_rows(send_.data(), lay.send_rows, recv_.data(), lay.recv_rows, row_bytes_);
  double t3 = comm::now();
  timers.exchange += t3 - t2;
  timers.rows_sent += n_send;
  timers.bytes_sent += n_send * row_bytes_;

  // Experts: group received rows by expert, one GEMM per expert over all its rows.
  out_rows_.assign(size_t(n_recv * D), 0.f);
  std::vector<std::vector<std::pair<int32_t, float>>> by_expert(static_cast<size_t>(cfg_.n_experts));
  for (int64_t i = 0; i < n_recv; ++i) {
    const uint8_t* p = recv_.data() + i * row_bytes_;
    const auto* ex = reinterpret_cast<const int32_t*>(p + D * 4);
    const auto* wt = reinterpret_cast<const float*>(p + D * 4 + k * 4);
    for (int64_t j = 0; j < k; ++j)
      if (ex[j] >= 0) {
        MO_CHECK(ex[j] < cfg_.n_experts && placement_.holds(me, ex[j]), "row for expert ", ex[j],
                 " reached rank ", me);
        by_expert[size_t(ex[j])].push_back({int32_t(i), wt[j]});
      }
  }
  std::vector<float> xin, yout;
  for (int64_t e = 0; e < cfg_.n_experts; ++e) {
    const auto& rows = by_expert[size_t(e)];
    if (rows.empty()) continue;
    const int64_t n = int64_t(rows.size());
    xin.resize(size_t(n * D));
    yout.resize(size_t(n * D));
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(xin.data() + i * D, recv_.data() + rows[size_t(i)].first * row_bytes_,
                  size_t(D) * 4);
    expert_ffn(cfg_, w.experts[size_t(e)], xin.data(), n, yout.data());
    for (int64_t i = 0; i < n; ++i) {
      float* o = out_rows_.data() + int64_t(rows[size_t(i)].first) * D;
      const float s = rows[size_t(i)].second;
      const float* src = yout.data() + i * D;
      for (int64_t d = 0; d < D; ++d) o[d] += s * src[d];
    }
  }
  double t4 = comm::now();
  timers.experts += t4 - t3;

  // Combine: results travel back along the reverse layout.
  back_.resize(size_t(n_send * D));
  ep_.alltoallv_rows(out_rows_.data(), lay.recv_rows, back_.data(), lay.send_rows, D * 4);
  double t5 = comm::now();
  timers.exchange += t5 - t4;

  // Home rank: shared expert plus the routed contributions.
  if (w.shared.loaded()) expert_ffn(cfg_, w.shared, h, T, y);
  else std::memset(y, 0, size_t(T * D) * 4);
  for (int64_t row = 0; row < n_send; ++row) {
    float* o = y + int64_t(lay.row_token[size_t(row)]) * D;
    const float* src = back_.data() + row * D;
    for (int64_t d = 0; d < D; ++d) o[d] += src[d];
  }
  timers.combine += comm::now() - t5;
}

}  // namespace modelone
