// Whole-model throughput: prefill tokens/s and decode time per token at growing contexts, in the
// chosen compute mode and in fp32 (the reference path) in the same run, with the machine's
// OpenBLAS sgemm rate (the model's matmul GFLOP/s over sgemm's) and read bandwidth (the decode
// step's weight stream over it) measured in the same run as yardsticks.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "model/io/model_source.h"
#include "dist/engine.h"
#include "dist/engine_setup.h"
#include "model/base/cpu_features.h"
#include "model/kernels/linear.h"
#include "model/config/model_info.h"

namespace modelone::bench {

namespace {
double sgemm_gflops(int threads) {
  const int64_t M = 512, N = 2048, K = 2048;
  std::vector<float> a(static_cast<size_t>(M * K), 0.01f), b(static_cast<size_t>(N * K), 0.02f), c(static_cast<size_t>(M * N));
  openblas_set_num_threads(threads);
  const double t = median_seconds([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.f, a.data(),
                int(K), b.data(), int(K), 0.f, c.data(), int(N));
  });
  openblas_set_num_threads(1);
  return 2.0 * double(M * N * K) / t / 1e9;
}
}  // namespace

int engine_bench(const EngineBenchOptions& o) {
  // One sequence on one rank (cp = 1): the other ranks, if any, serve experts.
  RankGrid grid = RankGrid::make(1, 0);
  const int threads = grid.start_threads(o.threads);
  ModelSource ms = resolve_model(o.model, o.sets);
  const ModelConfig& cfg = ms.cfg;
  // Checks --compute before any work; the modes are set per pass. The cache is the one the mode
  // timed against fp32 takes (auto: its dtype), on both sides.
  const Compute mode = resolve_compute(compute_choices().parse(o.compute));
  set_compute(mode);
  EngineOptions eo;
  eo.kv_dtype = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), ms.cfg, mode);
  eo.prefill_chunk = o.prefill_chunk;
  eo.repack = repack_choices().parse(o.repack);
  auto engine_ptr = make_engine(ms, grid, eo);
  Engine& engine = *engine_ptr;
  const bool active = grid.dp_index == 0;
  const double peak = sgemm_gflops(threads);
  const double bw = read_bandwidth_gbps(threads);
  // Matmul FLOPs: every active parameter once per token (multiply-add) but the embedding (a
  // lookup) and the LM head, which prefill runs for the last position only.
  const ParamCounts pc = count_params(cfg);
  const double head_params = double(cfg.vocab_size * cfg.hidden_size);
  const double head_flop = 2.0 * head_params;
  const double flop_tok = 2.0 * double(pc.active) - 2 * head_flop;
  // A decode step reads every weight a token passes through once (the embedding row aside), at
  // the weights' average stored bytes per parameter.
  const double stream_bytes = double(engine.weights().bytes) / double(pc.total) *
                              (double(pc.active_no_embedding) + head_params);
  std::vector<Compute> modes = {Compute::F32};
  if (mode != Compute::F32) modes.push_back(mode);
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(cfg.vocab_size - 1));
  for (Compute c : modes) {  // warm-up: first-touch the buffers and pages of a full prefill chunk
    set_compute(c);
    const int64_t n = std::min<int64_t>(o.prefill_chunk, o.contexts.empty() ? 0 : o.contexts[0]);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& t : ids) t = tok(rng);
    engine.reset();
    engine.prefill(active ? ids : std::vector<int32_t>{});
  }
  for (int64_t n : o.contexts) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& t : ids) t = tok(rng);
    double base_prefill = 0, base_decode = 0;
    for (Compute c : modes) {
      set_compute(c);
      engine.reset();
      grid.world.barrier();
      const double t0 = comm::now();
      engine.prefill(active ? ids : std::vector<int32_t>{});
      const double prefill = comm::now() - t0;
      std::vector<double> steps;
      int32_t next = ids.back();
      for (int64_t i = 0; i < o.decode_steps; ++i) {
        const double s0 = comm::now();
        engine.decode(active ? &next : nullptr);
        steps.push_back(comm::now() - s0);
      }
      const double dec = median(steps);
      if (c == Compute::F32) base_prefill = prefill, base_decode = dec;
      if (!grid.is_root()) continue;
      const double gflops = (flop_tok * double(n) + head_flop) / prefill / 1e9;
      Line l("engine");
      l.add("model", cfg.name)
          .add("compute", std::string(compute_name(c)))
          .add("repack", o.repack)
          .add("world", int64_t(grid.W))
          .add("threads", int64_t(threads))
          .add("context", n)
          .add("prefill_s", prefill)
          .add("prefill_tok_s", double(n) / prefill)
          .add("prefill_gflops", gflops)
          .add("decode_ms", dec * 1e3)
          .add("decode_tok_s", dec > 0 ? 1.0 / dec : 0.0)
          .add("sgemm_gflops", peak)
          .add("prefill_ratio_vs_sgemm", gflops / peak, 3)
          .add("decode_weight_gbps", dec > 0 ? stream_bytes / dec / 1e9 : 0.0)
          .add("read_gbps", bw)
          .add("decode_bandwidth_fraction", dec > 0 ? stream_bytes / dec / 1e9 / bw : 0.0, 3);
      if (c != Compute::F32)
        l.add("prefill_speedup_vs_fp32", base_prefill / prefill, 3)
            .add("decode_ms_ratio_vs_fp32", dec / base_decode, 3);
      l.print();
    }
  }
  return 0;
}

}  // namespace modelone::bench
