// The expert exchange alone (dispatch + combine, with packing and the per-row reduction, no
// expert GEMMs) at V4-Flash dimensions, against a plain MPI_Alltoallv moving the same bytes in
// the same run. Routing is uniform random top-k per token.
#include <algorithm>
#include <numeric>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "model/io/model_source.h"
#include "dist/grid.h"
#include "dist/moe_parallel.h"
#include "model/kernels/linear.h"
#include "model/blocks/moe.h"

namespace modelone::bench {

namespace {

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

namespace {

// The baseline: the same bytes per destination (rows sent / received per rank) through two
// MPI_Alltoallv, no packing; *bytes: what a rank sends (dispatch + combine), averaged over ranks.
double alltoallv_baseline(const comm::Comm& ep, int iters, const std::vector<int64_t>& sent,
                          const std::vector<int64_t>& recvd, const RowCodec& codec, double* bytes) {
  // Baseline: the same bytes per destination through MPI_Alltoallv, no packing.
  const int64_t rb = codec.dispatch_bytes(), cbytes = codec.combine_bytes();
  std::vector<int64_t> send_d(sent.size()), recv_d(sent.size()), send_c(sent.size()),
      recv_c(sent.size());
  int64_t ns = 0, nr = 0;
  for (size_t q = 0; q < sent.size(); ++q) {
    send_d[q] = sent[q] * rb;
    recv_d[q] = recvd[q] * rb;
    send_c[q] = recvd[q] * cbytes;
    recv_c[q] = sent[q] * cbytes;
    ns += sent[q];
    nr += recvd[q];
  }
  std::vector<uint8_t> sb(size_t(ns * rb)), rbuf(size_t(nr * rb)), sc(size_t(nr * cbytes)),
      rc(size_t(ns * cbytes));
  const double raw = median_max(ep, iters, [&] {
    ep.alltoallv(sb.data(), send_d, rbuf.data(), recv_d);
    ep.alltoallv(sc.data(), send_c, rc.data(), recv_c);
  });
  // Bytes this rank sends (dispatch + combine), averaged over ranks.
  *bytes = ep.allreduce(double(ns * rb + nr * cbytes), comm::Op::Sum) / ep.size();
  return raw;
}

}  // namespace

int ep_bench(const EpBenchOptions& o) {
  RankGrid grid = RankGrid::make(0, 0);
  grid.start_threads(o.threads);
  ModelSource ms = resolve_model(o.model, o.sets);
  ModelConfig cfg = ms.cfg;
  cfg.num_layers = 1;
  const comm::Comm& ep = grid.ep_comm;
  MoeOptions mo;
  mo.dispatch = dispatch_choices().parse(o.dispatch);
  mo.combine = combine_choices().parse(o.combine);
  mo.transport = transport_choices().parse(o.transport);
  MoeParallel moe(cfg, ep, ExpertPlacement::uniform(cfg.n_experts, ep.size(), 1), mo);
  const int64_t D = cfg.hidden_size;
  std::mt19937_64 g(o.seed + uint64_t(grid.world.rank()));
  std::normal_distribution<float> nd;
  const char* transport = moe.uses_shared_memory() ? "shm" : "mpi";
  for (int64_t T : o.tokens) {
    const Routing r = random_routing(T, cfg.top_k, cfg.n_experts, g);
    std::vector<float> h(static_cast<size_t>(T * D)), y(static_cast<size_t>(T * D));
    for (auto& v : h) v = nd(g);
    // Dispatch (layout, pack, exchange: rows readable on their expert rank) and combine (results
    // home and added) are timed; the expert stage between them (an identity stand-in) is not.
    // Rows each rank sends and receives, for the baseline's byte counts.
    std::vector<int64_t> sent(size_t(ep.size()), 0), recvd(size_t(ep.size()), 0);
    std::vector<double> td, tc;
    MoeBatch b;  // reused, as the engine reuses its batches: buffers stay mapped
    for (int i = 0; i <= o.iters; ++i) {
      double d = 0, c = 0;
      std::fill(y.begin(), y.end(), 0.f);
      for (int64_t t0 = 0;; t0 += std::min(moe.round_tokens(), T - t0)) {
        const int64_t n = std::min(moe.round_tokens(), T - t0);
        ep.barrier();
        double t1 = comm::now();
        moe.dispatch(0, r, h.data(), t0, n, &b);
        d += ep.allreduce(comm::now() - t1, comm::Op::Max);
        moe.run_experts(0, nullptr, &b, nullptr);
        ep.barrier();
        t1 = comm::now();
        moe.combine(&b, y.data());
        c += ep.allreduce(comm::now() - t1, comm::Op::Max);
        if (i == 0)
          for (size_t q = 0; q < sent.size(); ++q) {
            sent[q] += b.send_rows[q];
            recvd[q] += b.recv_rows[q];
          }
        if (!b.more && t0 + n >= T) break;
      }
      if (i == 0) {  // warm-up
        moe.timers.clear();
        continue;
      }
      td.push_back(d);
      tc.push_back(c);
    }
    const double ours = median(td) + median(tc);
    double bytes = 0;
    const double raw = alltoallv_baseline(ep, o.iters, sent, recvd, moe.codec(), &bytes);
    if (!grid.is_root()) continue;
    Line("ep")
        .add("ranks", int64_t(ep.size()))
        .add("transport", std::string(transport))
        .add("dispatch", o.dispatch)
        .add("combine", o.combine)
        .add("tokens_per_rank", T)
        .add("bytes_per_rank", int64_t(bytes))
        .add("seconds", ours, 5)
        .add("gbps", bytes / ours / 1e9)
        .add("raw_seconds", raw, 5)
        .add("ratio_vs_alltoallv", raw / ours, 3)
        .add("dispatch_seconds", median(td), 3)
        .add("combine_seconds", median(tc), 3)
        // Where the time goes on rank 0, per iteration: packing rows (layout), the exchanges
        // (counts, and waiting for both all-to-alls) and adding the results home.
        .add("pack_seconds", moe.timers.pack / o.iters, 3)
        .add("exchange_seconds", moe.timers.exchange / o.iters, 3)
        .add("add_seconds", moe.timers.combine / o.iters, 3)
        .print();
  }
  return 0;
}

}  // namespace modelone::bench
