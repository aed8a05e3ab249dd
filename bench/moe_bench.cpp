// One MoE layer (V4-Flash shape by default: hidden 4096, top-6 of 256 experts, 2048-wide) for a
// fixed global batch spread over the ranks, split into route / pack / exchange / expert GEMM /
// combine. Run it under mpirun at 1, 2, 4, 8 ranks to see how the layer scales with ep.
// Baseline in the same run: one product of an expert's gate shape [I, D] at the layer's average
// rows per expert (linear(), the compute mode's GEMM), whose FLOP rate the experts should reach.
#include <algorithm>
#include <cstring>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "comm/rank_stats.h"
#include "model/io/model_source.h"
#include "dist/grid.h"
#include "dist/moe_parallel.h"
#include "model/blocks/weight_packing.h"
#include "model/kernels/linear.h"
#include "model/io/tensor_table.h"

namespace modelone::bench {

namespace {

// The baseline: linear() on a local expert's gate weight w1 [I, D] (as loaded, before any
// repacking: linear()'s own GEMM) at the average rows per local expert (at least 1), in the
// same compute mode; GFLOP/s on rank 0 (the others wait).
double gemm_baseline(const Weight& w1, int64_t local, const comm::Comm& ep, int64_t pairs) {
  double rate = 0;
  if (ep.rank() == 0 && !w1.empty()) {
    const int64_t T = std::max<int64_t>(1, pairs / std::max<int64_t>(local, 1));
    const int64_t I = w1.rows(), D = w1.cols();
    std::vector<float> x(size_t(T * D), 0.5f), y(size_t(T * I));
    const double s = median_seconds([&] { linear(x.data(), T, D, w1, 0, I, y.data(), I); }, 3, 0.3);
    rate = 2.0 * double(T) * double(I) * double(D) / s / 1e9;
  }
  ep.bcast(&rate, 1, 0);
  return rate;
}

}  // namespace

int moe_bench(const MoeBenchOptions& o) {
  RankGrid grid = RankGrid::make(0, 0);
  const int threads = grid.start_threads(o.threads);
  set_compute(resolve_compute(compute_choices().parse(o.compute)));
  std::vector<std::string> sets = o.sets;
  sets.push_back("num_hidden_layers=1");
  sets.push_back("mlp_layer_types=moe");
  ModelSource ms = resolve_model(o.model, sets);
  const ModelConfig& cfg = ms.cfg;
  const comm::Comm& ep = grid.ep_comm;
  auto placement = ExpertPlacement::uniform(cfg.n_experts, ep.size(), 1);
  // The FFN block's tensors only, and only this rank's experts.
  ModelWeights w = load_weights(
      cfg, *ms.weights, [&](int64_t, int64_t e) { return placement[0].holds(ep.rank(), e); },
      nullptr, [](const TensorSpec& s) { return std::strstr(s.pattern, ".ffn.") != nullptr; });
  int64_t local = 0;
  Weight base_w1;  // shares the loaded buffer, which stays as it is when the experts are repacked
  for (int64_t e = 0; e < cfg.n_experts; ++e)
    if (placement[0].holds(ep.rank(), e) && local++ == 0) base_w1 = w.layers[0].experts[size_t(e)].w1;
  if (o.experts == "grouped" && compute_mode() == Compute::BF16) pack_expert_panels(w);
  MoeOptions mo;
  mo.dispatch = dispatch_choices().parse(o.dispatch);
  mo.combine = combine_choices().parse(o.combine);
  mo.overlap = o.overlap;
  mo.transport = transport_choices().parse(o.transport);
  mo.grouped_experts = o.experts != "each";
  MoeParallel moe(cfg, ep, placement, mo);
  const int P = ep.size(), me = ep.rank();
  const int64_t T = o.global_tokens / P + (me < o.global_tokens % P ? 1 : 0), D = cfg.hidden_size;
  std::mt19937 g(uint32_t(17 + grid.world.rank()));
  std::normal_distribution<float> nd;
  std::vector<float> h(static_cast<size_t>(T * D)), y(static_cast<size_t>(T * D));
  for (auto& v : h) v = nd(g);
  std::vector<int32_t> ids(static_cast<size_t>(T), 0);
  moe.forward(0, w.layers[0], h.data(), T, ids.data(), y.data());  // warm-up
  const int64_t pairs0 = moe.computed_pairs[0];
  std::vector<double> total, rate;
  MoeTimers sum;
  for (int i = 0; i < o.iters; ++i) {
    moe.timers.clear();
    ep.barrier();
    const double t0 = comm::now();
    moe.forward(0, w.layers[0], h.data(), T, ids.data(), y.data());
    total.push_back(ep.allreduce(comm::now() - t0, comm::Op::Max));
    const comm::Reduced ph = comm::reduce_fields(ep, moe.timers);  // the slowest rank's phases
    MoeTimers::fields(sum, [&](const char* name, auto& x) { x += decltype(x + 0)(ph[name].max); });
  }
  // The experts' FLOP rate on each rank: (token, expert) pairs x 3 products of D x I.
  const double I = double(cfg.moe_inter), pair_flop = 6.0 * double(D) * I;
  const int64_t pairs = (moe.computed_pairs[0] - pairs0) / std::max(o.iters, 1);
  const double mine = double(pairs) * pair_flop / std::max(moe.timers.experts, 1e-9) / 1e9;
  const comm::Spread experts_rate = comm::spread(ep, {mine})[0];
  const double gemm_rate = gemm_baseline(base_w1, local, ep, pairs);
  if (!grid.is_root()) return 0;
  const double n = double(o.iters);
  Line("moe_layer")
      .add("ranks", int64_t(P))
      .add("threads", int64_t(threads))
      .add("global_tokens", o.global_tokens)
      .add("tokens_per_rank", T)
      .add("transport", std::string(moe.uses_shared_memory() ? "shm" : "mpi"))
      .add("dispatch", o.dispatch)
      .add("overlap", int64_t(o.overlap))
      .add("total_ms", median(total) * 1e3)
      .add("route_ms", sum.route / n * 1e3)
      .add("pack_ms", sum.pack / n * 1e3)
      .add("exchange_ms", sum.exchange / n * 1e3)
      .add("experts_ms", sum.experts / n * 1e3)
      .add("combine_ms", sum.combine / n * 1e3)
      .add("compute", std::string(compute_name(compute_mode())))
      .add("experts", o.experts)
      .add("pairs_per_rank", pairs)
      .add("experts_gflops_min", experts_rate.min)
      .add("experts_gflops_mean", experts_rate.mean)
      .add("gemm_gflops", gemm_rate)
      .add("experts_vs_gemm", experts_rate.mean / gemm_rate, 3)
      .print();
  return 0;
}

}  // namespace modelone::bench
