// The expert exchange alone (dispatch + combine, with packing and the per-row reduction, no
// expert GEMMs) at V4-Flash dimensions, against a plain MPI_Alltoallv moving the same bytes in
// the same run. Routing is uniform random top-k per token.
#include <algorithm>
#include <numeric>
#include <random>

#include "bench/bench_command.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "dist/cli/model_source.h"
#include "dist/grid.h"
#include "dist/moe_parallel.h"
#include "model/gemm.h"
#include "model/moe.h"

namespace modelone::bench {

namespace {

// Median over iterations of the slowest rank's time.
double median_max(const comm::Comm& c, int iters, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    c.barrier();
    const double t0 = comm::now();
    fn();
    t.push_back(c.allreduce(comm::now() - t0, comm::Op::Max));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

Routing random_routing(int64_t T, int64_t k, int64_t E, std::mt19937_64& g) {
  Routing r;
  r.T = T;
  r.k = k;
  std::vector<int32_t> pool(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    std::iota(pool.begin(), pool.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
      std::swap(pool[size_t(j)], pool[size_t(j + int64_t(g() % uint64_t(E - j)))]);
      r.expert.push_back(pool[size_t(j)]);
      r.weight.push_back(1.f / float(k));
    }
  }
  return r;
}

}  // namespace

int ep_bench(const EpBenchOptions& o) {
  RankGrid grid = RankGrid::make(0, 0);
  set_compute_threads(grid.threads(o.threads));
  ModelSource ms = resolve_model(o.model, o.sets);
  ModelConfig cfg = ms.cfg;
  cfg.num_layers = 1;
  const comm::Comm& ep = grid.ep_comm;
  MoeOptions mo;
  mo.dispatch = payload_from_name(o.dispatch, "--dispatch");
  mo.combine = payload_from_name(o.combine, "--combine");
  MoeParallel moe(cfg, ep, ExpertPlacement::uniform(cfg.n_experts, ep.size(), 1), mo);
  const int64_t D = cfg.hidden_size;
  std::mt19937_64 g(o.seed + uint64_t(grid.world.rank()));
  std::normal_distribution<float> nd;
  for (int64_t T : o.tokens) {
    const Routing r = random_routing(T, cfg.top_k, cfg.n_experts, g);
    std::vector<float> h(static_cast<size_t>(T * D)), y(static_cast<size_t>(T * D));
    for (auto& v : h) v = nd(g);
    // Dispatch (layout, pack, counts, exchange) and combine (exchange back, reduce at home) are
    // timed; the expert stage between them (here a stand-in) is not.
    MoeBatch b;
    moe.timers.clear();
    std::vector<double> td, tc;
    for (int i = 0; i <= o.iters; ++i) {
      ep.barrier();
      double t0 = comm::now();
      moe.pack(0, r, h.data(), 0, T, &b);
      moe.start_dispatch(&b);
      b.req.wait();
      const double d = ep.allreduce(comm::now() - t0, comm::Op::Max);
      moe.run_experts(0, nullptr, &b, nullptr);
      std::fill(y.begin(), y.end(), 0.f);
      ep.barrier();
      t0 = comm::now();
      moe.start_combine(&b);
      moe.finish_combine(&b, y.data());
      const double c = ep.allreduce(comm::now() - t0, comm::Op::Max);
      if (i == 0) continue;  // warm-up
      td.push_back(d);
      tc.push_back(c);
    }
    std::sort(td.begin(), td.end());
    std::sort(tc.begin(), tc.end());
    const double ours = td[td.size() / 2] + tc[tc.size() / 2];
    // Baseline: the same bytes per destination through MPI_Alltoallv, no packing.
    std::vector<int64_t> send_d(b.send_rows.size()), recv_d(b.send_rows.size()),
        send_c(b.send_rows.size()), recv_c(b.send_rows.size());
    for (size_t i = 0; i < b.send_rows.size(); ++i) {
      send_d[i] = b.send_rows[i] * moe.codec().dispatch_bytes();
      recv_d[i] = b.recv_rows[i] * moe.codec().dispatch_bytes();
      send_c[i] = b.recv_rows[i] * moe.codec().combine_bytes();
      recv_c[i] = b.send_rows[i] * moe.codec().combine_bytes();
    }
    std::vector<uint8_t> sb(b.send.size()), rb(b.recv.size()), sc(b.out.size()), rc(b.back.size());
    const double raw = median_max(ep, o.iters, [&] {
      ep.alltoallv(sb.data(), send_d, rb.data(), recv_d);
      ep.alltoallv(sc.data(), send_c, rc.data(), recv_c);
    });
    // Bytes this rank sends (dispatch + combine), averaged over ranks.
    double bytes = double(b.send.size() + b.out.size());
    bytes = ep.allreduce(bytes, comm::Op::Sum) / ep.size();
    if (!grid.is_root()) continue;
    Line("ep")
        .add("ranks", int64_t(ep.size()))
        .add("dispatch", o.dispatch)
        .add("combine", o.combine)
        .add("tokens_per_rank", T)
        .add("bytes_per_rank", int64_t(bytes))
        .add("seconds", ours, 5)
        .add("gbps", bytes / ours / 1e9)
        .add("raw_seconds", raw, 5)
        .add("ratio_vs_alltoallv", raw / ours, 3)
        .add("dispatch_seconds", td[td.size() / 2], 3)
        .add("combine_seconds", tc[tc.size() / 2], 3)
        .print(o.json);
  }
  return 0;
}

}  // namespace modelone::bench
