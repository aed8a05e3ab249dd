// One MoE layer (V4-Flash shape by default: hidden 4096, top-6 of 256 experts, 2048-wide) for a
// fixed global batch spread over the ranks, split into route / pack / exchange / expert GEMM /
// combine. Run it under mpirun at 1, 2, 4, 8 ranks to see how the layer scales with ep.
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
#include "model/kernels/linear.h"
#include "model/io/tensor_table.h"

namespace modelone::bench {

int moe_bench(const MoeBenchOptions& o) {
  RankGrid grid = RankGrid::make(0, 0);
  const int threads = grid.threads(o.threads);
  set_compute_threads(threads);
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
  MoeOptions mo;
  mo.dispatch = dispatch_choices().parse(o.dispatch);
  mo.combine = combine_choices().parse(o.combine);
  mo.overlap = o.overlap;
  mo.transport = transport_choices().parse(o.transport);
  MoeParallel moe(cfg, ep, placement, mo);
  const int P = ep.size(), me = ep.rank();
  const int64_t T = o.global_tokens / P + (me < o.global_tokens % P ? 1 : 0), D = cfg.hidden_size;
  std::mt19937 g(uint32_t(17 + grid.world.rank()));
  std::normal_distribution<float> nd;
  std::vector<float> h(static_cast<size_t>(T * D)), y(static_cast<size_t>(T * D));
  for (auto& v : h) v = nd(g);
  std::vector<int32_t> ids(static_cast<size_t>(T), 0);
  moe.forward(0, w.layers[0], h.data(), T, ids.data(), y.data());  // warm-up
  std::vector<double> total;
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
      .print();
  return 0;
}

}  // namespace modelone::bench
