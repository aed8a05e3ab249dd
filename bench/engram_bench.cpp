// `modelone bench engram`: Engram's sharded tables over the mpirun world.
//   fetch  the rows of a step of T tokens (T / W positions per rank, a real-text-like stream
//          whose n-grams repeat) through each path, against the same rows gathered from a whole
//          table in local memory (the baseline), and against the reference's design (every rank
//          looks up all T tokens in its own rows, then an all-reduce of full embeddings):
//          lookups/s, GB/s, bytes per token per Engram layer, and the dedupe ratio.
//   step   engine steps with Engram on (prefetch on, then off) and off, in prefill and decode:
//          what Engram adds to the step, and where (hashing and waits vs the block's GEMM).
// Collective timings are the slowest rank's; medians of --iters runs.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "comm/rank_stats.h"
#include "model/io/model_source.h"
#include "dist/binding.h"
#include "dist/engine.h"
#include "dist/engine_setup.h"
#include "model/base/check.h"
#include "model/blocks/engram.h"
#include "model/blocks/engram_hash.h"
#include "model/kernels/linear.h"
#include "model/kernels/omp_threads.h"

namespace modelone::bench {

namespace {

// Phrases of 2-8 tokens drawn Zipf-like from a phrase book, themselves drawn Zipf-like: text
// whose n-grams repeat the way natural text's do.
std::vector<int32_t> text_like(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto zipf = [&](int64_t m) {
    std::vector<double> w(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) w[size_t(i)] = 1.0 / std::pow(double(i + 1), 1.1);
    return std::discrete_distribution<int64_t>(w.begin(), w.end());
  };
  auto word = zipf(vocab), pick = zipf(4096);
  std::uniform_int_distribution<int> len(2, 8);
  std::vector<std::vector<int32_t>> book(4096);
  for (auto& p : book) {
    p.resize(size_t(len(rng)));
    for (auto& t : p) t = int32_t(word(rng));
  }
  std::vector<int32_t> ids;
  while (int64_t(ids.size()) < n) {
    const auto& p = book[size_t(pick(rng))];
    ids.insert(ids.end(), p.begin(), p.end());
  }
  ids.resize(size_t(n));
  return ids;
}

std::unique_ptr<EngramStore> make_store(const ModelConfig& cfg, const comm::Comm& c,
                                        EngramFetch f) {
  EngramOptions eo;
  eo.fetch = f;
  return std::make_unique<EngramStore>(
      cfg, c, eo, synthetic_compression_map(cfg.seed, cfg.vocab_size, cfg.engram.compressed_vocab),
      EngramTables::synthetic(cfg), nullptr);
}

void fetch_bench(const EngramBenchOptions& o, const ModelConfig& cfg) {
  const comm::Comm world = comm::Comm::world();
  const int W = world.size(), me = world.rank();
  const EngramConfig& ec = cfg.engram;
  const int64_t C = ec.columns(), dim = ec.dim(), K = int64_t(ec.layers.size());
  const int64_t rb = engram_row_bytes(ec.table_dtype, ec.head_dim);
  auto get = make_store(cfg, world, EngramFetch::Get);
  auto a2a = make_store(cfg, world, EngramFetch::Alltoall);
  const comm::Comm solo = world.split(me, 0);
  auto local = make_store(cfg, solo, EngramFetch::Get);  // the whole tables on this rank
  for (int64_t T : o.tokens) {
    const std::vector<int32_t> ids = text_like(T, cfg.vocab_size, o.seed + uint64_t(T));
    std::vector<int32_t> hist(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) hist[i] = get->compress(ids[i]);
    // This rank's positions, and (for the reference's design) all of them.
    const int64_t p0 = T * me / W, n = T * (me + 1) / W - p0;
    std::vector<std::vector<int64_t>> mine(static_cast<size_t>(K)), all(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      mine[size_t(k)].resize(size_t(n * C));
      all[size_t(k)].resize(size_t(T * C));
      engram_rows(get->hash(k), ec.n_heads, hist.data(), p0, n, get->pad_id(), mine[size_t(k)].data());
      engram_rows(get->hash(k), ec.n_heads, hist.data(), 0, T, get->pad_id(), all[size_t(k)].data());
    }
    std::vector<float> e(static_cast<size_t>(T * dim));
    auto fetch = [&](EngramStore& s) {
      return [&] {
        for (int64_t k = 0; k < K; ++k) s.request(k, mine[size_t(k)]);
        for (int64_t k = 0; k < K; ++k) s.wait(k, e.data());
      };
    };
    const double t_local = median_max(world, o.iters, fetch(*local));
    const EngramStats g0 = get->stats;
    const double t_get = median_max(world, o.iters, fetch(*get));
    const double t_a2a = median_max(world, o.iters, fetch(*a2a));
    const double t_red = median_max(world, o.iters, [&] {
      for (int64_t k = 0; k < K; ++k) {
        get->lookup_owned(k, all[size_t(k)], e.data());
        world.allreduce(e.data(), T * dim, comm::Op::Sum);
      }
    });
    // Per step (one iteration): rows wanted, unique rows, and remote bytes, summed over ranks.
    const double runs = double(o.iters + 1);
    const comm::Reduced got = comm::reduce_fields(world, comm::fields_minus(get->stats, g0));
    const double lookups = got["lookups"].sum / runs, uniq = got["unique"].sum / runs;
    const double remote_b = got["bytes"].sum / runs;
    if (me != 0) continue;
    auto line = [&](const char* path, double t, double bytes) {
      Line("engram_fetch").add("tokens", T).add("ranks", int64_t(W)).add("path", path)
          .add("ms", t * 1e3).add("lookups_per_s", lookups / t, 4).add("gb_s", bytes / t / 1e9)
          .add("bytes_per_token_layer", bytes / double(T * K), 5)
          .add("ratio_vs_local", t_local / t, 3).print();
    };
    line("local", t_local, uniq * double(rb));
    line("get", t_get, remote_b);
    line("alltoall", t_a2a, remote_b);
    // Ring all-reduce: each rank sends and receives about 2 (W - 1) / W of the embeddings.
    line("allreduce", t_red, double(T * K * dim * 4) * 2.0 * double(W - 1) / double(std::max(W, 1)) * W);
    Line("engram_dedupe").add("tokens", T).add("lookups", int64_t(lookups))
        .add("unique", int64_t(uniq)).add("ratio", lookups / std::max(uniq, 1.0), 3).print();
  }
}

struct StepTimes {
  double prefill = 0, decode = 0, engram_prefill = 0, engram_decode = 0, wait = 0;
};

StepTimes step_times(const ModelSource& ms, const EngramBenchOptions& o, int64_t T, bool on,
                     bool prefetch, bool local = false) {
  RankGrid grid = RankGrid::make(0, 0);
  EngineOptions eo;
  eo.kv_dtype = DType::BF16;
  eo.prefill_chunk = (T + grid.cp - 1) / grid.cp;
  eo.engram.enabled = on;
  eo.engram.prefetch = prefetch;
  eo.engram.replicate = local;
  auto e = make_engine(ms, grid, eo);
  const std::vector<int32_t> ids = text_like(T, ms.cfg.vocab_size, o.seed);
  StepTimes s;
  std::vector<double> pf;
  for (int i = 0; i < o.iters; ++i) {
    e->reset();
    const EngineTimers t0 = e->timers();
    grid.world.barrier();
    const double w0 = comm::now();
    e->prefill(ids);
    pf.push_back(grid.world.allreduce(comm::now() - w0, comm::Op::Max));
    s.engram_prefill = comm::reduce_fields(grid.world, comm::fields_minus(e->timers(), t0))["engram"].max;
  }
  s.prefill = median(pf);
  std::vector<double> dt;
  int32_t tok = 1;
  const EngineTimers e0 = e->timers();
  for (int i = 0; i < o.decode_steps; ++i) {
    grid.world.barrier();
    const double w0 = comm::now();
    e->decode(&tok);
    dt.push_back(grid.world.allreduce(comm::now() - w0, comm::Op::Max));
  }
  s.decode = median(dt);
  s.engram_decode = comm::reduce_fields(grid.world, comm::fields_minus(e->timers(), e0))["engram"].max /
                    double(std::max<int64_t>(o.decode_steps, 1));
  if (on) s.wait = comm::reduce_fields(grid.world, e->engram()->stats)["wait_s"].max;
  return s;
}

void step_bench(const EngramBenchOptions& o, const ModelSource& ms) {
  const int me = comm::Comm::world().rank();
  const int64_t L = ms.cfg.num_layers;
  for (int64_t T : o.step_tokens) {
    const StepTimes off = step_times(ms, o, T, false, false);
    const StepTimes on = step_times(ms, o, T, true, true);
    const StepTimes local = step_times(ms, o, T, true, true, /*local=*/true);
    const StepTimes nop = step_times(ms, o, T, true, false);
    if (me != 0) continue;
    auto pct = [](double a, double b) { return 100.0 * (a - b) / b; };
    // The fetch: sharded tables (rows from other ranks) against every row local, prefetch on.
    Line("engram_fetch_cost").add("tokens", T).add("layers", L)
        .add("prefill_sharded_ms", on.prefill * 1e3).add("prefill_local_ms", local.prefill * 1e3)
        .add("prefill_fetch_pct", pct(on.prefill, local.prefill), 3)
        .add("decode_sharded_ms", on.decode * 1e3).add("decode_local_ms", local.decode * 1e3)
        .add("decode_fetch_pct", pct(on.decode, local.decode), 3).print();
    // What the same Engram cost would add to a full-depth model (40 layers for V4.1-Flash),
    // scaling the backbone time per layer: an estimate, labelled as one.
    auto full = [&](double a, double b) { return 100.0 * (a - b) / (b / double(L) * 40.0); };
    Line("engram_step").add("phase", "prefill").add("tokens", T).add("layers", L)
        .add("off_ms", off.prefill * 1e3).add("on_ms", on.prefill * 1e3)
        .add("no_prefetch_ms", nop.prefill * 1e3).add("overhead_pct", pct(on.prefill, off.prefill), 3)
        .add("no_prefetch_overhead_pct", pct(nop.prefill, off.prefill), 3)
        .add("engram_ms", on.engram_prefill * 1e3)
        .add("est_overhead_pct_40_layers", full(on.prefill, off.prefill), 3).print();
    Line("engram_step").add("phase", "decode").add("context", T).add("layers", L)
        .add("off_ms", off.decode * 1e3).add("on_ms", on.decode * 1e3)
        .add("no_prefetch_ms", nop.decode * 1e3).add("overhead_pct", pct(on.decode, off.decode), 3)
        .add("no_prefetch_overhead_pct", pct(nop.decode, off.decode), 3)
        .add("engram_ms", on.engram_decode * 1e3)
        .add("est_overhead_pct_40_layers", full(on.decode, off.decode), 3).print();
  }
}

}  // namespace

int engram_bench(const EngramBenchOptions& o) {
  set_compute_threads(o.threads);
  pin_if_oversubscribed(comm::Comm::world(), threads_here());
  // Tables of about 24 x 100K rows each (V4.1's 384M do not fit here): the fetch path is the
  // same, only the rows are fewer.
  std::vector<std::string> fsets = {"engram_vocab_size=100000", "engram_num_embeddings="};
  fsets.insert(fsets.end(), o.sets.begin(), o.sets.end());
  const ModelSource fms = resolve_model(o.model, fsets);
  MO_REQUIRE(fms.cfg.engram.enabled(), o.model, ": bench engram needs a model with Engram layers");
  if (o.part != "step") fetch_bench(o, fms.cfg);
  if (o.part == "fetch") return 0;
  // Steps: the model cut to a few layers around its Engram layers (V4.1-Flash: 0-3 and 14, its
  // Engram layers 1 and 14 and the sources they read), and 8 experts (top-6: the real
  // per-token expert work). V4 presets with Engram: their first 4 layers, Engram on 1 and 3.
  std::vector<std::string> ssets = fsets;
  if (fms.cfg.v41())
    ssets.insert(ssets.begin(), {"keep_layers=0,1,2,3,14", "n_routed_experts=8"});
  else
    ssets.insert(ssets.begin(), {"num_hidden_layers=4", "engram_layer_ids=1,3", "n_routed_experts=8",
                                 "vocab_size=16384"});
  step_bench(o, resolve_model(o.model, ssets));
  return 0;
}

}  // namespace modelone::bench
