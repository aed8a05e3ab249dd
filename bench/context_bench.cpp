// `modelone bench context`: one long sequence over the cp group (the mpirun world) against the
// same sequence on one rank (world rank 0 alone, run first in the same job while the others
// wait asleep). V4-Flash attention shapes, layers and experts cut by the default --set list.
//   prefill  wall time, per-rank attention compute (CPU seconds: meaningful when ranks
//            outnumber cores), load imbalance (max / mean of it), exchange time and bytes per
//            layer, efficiency T1 / (C * TC)
//   decode   per token at contexts up to 1M (caches filled synthetically), cp = 1 and cp = C
//            side by side, the indexer / top-k / attend / merge split, the fitted growth
//            exponent, and sparse CSA against dense attention over the same entries
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "comm/rank_stats.h"
#include "model/io/model_source.h"
#include "dist/binding.h"
#include "dist/engine.h"
#include "dist/engine_setup.h"
#include "model/kernels/linear.h"
#include "model/kernels/omp_threads.h"

namespace modelone::bench {

namespace {

struct Prefill {
  double wall = 0, attn_cpu_max = 0, attn_cpu_mean = 0, exch_s = 0, exch_bytes = 0, moe_exch_s = 0;
  std::string attn_cpu_by_rank;  // "r0/r1/..." seconds: where an imbalance sits
};
struct Decode {
  double step = 0, indexer = 0, topk = 0, attend = 0, merge = 0, csa_sparse = 0, dense = 0;
  double attention = 0, moe = 0, head = 0;  // the tail rank's step: attention, MoE, LM head
  double cache_bytes_per_token = 0;         // every rank's caches over the context
};

// The cut: --layers, or by default V4-Flash's first CSA and HCA layers, V4.1's layers 0-3, 8,
// 20, 21, 24 (2 window-only, 3 ratio-2 and 3 ratio-1: sources, readers, a masked index source);
// 8 experts; then --set.
std::vector<std::string> context_sets(const ContextBenchOptions& o) {
  std::vector<std::string> sets = {"n_routed_experts=8"};
  std::string layers;
  for (int64_t l : o.layers) {
    if (!layers.empty()) layers += ',';
    layers += std::to_string(l);  // (not "," + to_string: GCC 12 warns -Wrestrict on it)
  }
  if (layers.empty() && resolve_model(o.model, {}).cfg.v41()) layers = "0,1,2,3,8,20,21,24";
  if (!layers.empty()) {
    sets.push_back("keep_layers=" + layers);
  } else {
    sets.push_back("num_hidden_layers=2");
    sets.push_back("layer_types=compressed_sparse_attention,heavily_compressed_attention");
  }
  sets.insert(sets.end(), o.sets.begin(), o.sets.end());
  return sets;
}

std::unique_ptr<Engine> bench_engine(const ModelSource& ms, const RankGrid& grid,
                                     const ContextBenchOptions& o, CpLayout layout) {
  EngineOptions eo;
  eo.engram.enabled = false;  // attention and caches only: bench engram measures Engram
  eo.kv_dtype = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), ms.cfg, compute_mode());
  eo.cp_layout = layout;
  eo.prefill_chunk = o.prefill_chunk;
  auto e = make_engine(ms, grid, eo);
  // Warm-up: one full step first-touches the scratch of a prefill step and the weights' pages.
  std::vector<int32_t> ids(static_cast<size_t>(o.prefill_chunk * grid.cp), 1);
  e->prefill(ids);
  e->reset();
  return e;
}

Prefill run_prefill(Engine& e, int64_t n, uint64_t seed) {
  const RankGrid& g = e.grid();
  std::mt19937 rng(uint32_t(seed + uint64_t(n)));
  std::uniform_int_distribution<int32_t> tok(0, int32_t(e.config().vocab_size - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = tok(rng);
  e.reset();
  e.counters().clear();
  e.moe().timers.clear();
  const CpTimers a0 = e.attention().timers();
  g.world.barrier();
  const double t0 = comm::now();
  e.prefill(ids);
  g.world.barrier();
  Prefill p;
  p.wall = comm::now() - t0;
  const double cpu = (e.attention().timers() - a0).compute_cpu;
  const comm::Reduced attn = comm::reduce_fields(g.world, e.attention().timers() - a0);
  p.attn_cpu_max = attn["compute_cpu"].max;
  p.attn_cpu_mean = attn["compute_cpu"].mean;
  std::vector<double> by_rank(static_cast<size_t>(g.W));
  g.world.allgather(&cpu, 1, by_rank.data());
  for (double c : by_rank) {
    if (!p.attn_cpu_by_rank.empty()) p.attn_cpu_by_rank += '/';
    p.attn_cpu_by_rank += std::to_string(c).substr(0, 6);
  }
  for (const comm::OpSummary& s : e.counters().reduce(g.world)) {
    p.exch_s += s.seconds_max;
    p.exch_bytes += double(s.bytes_sum);
  }
  p.moe_exch_s = comm::reduce_fields(g.world, e.moe().timers)["exchange"].max;
  return p;
}

// Dense MQA of one query over all n entries of the CSA layer's cache (the same entries the
// sparse path indexes), heads split over the threads.
double dense_over_entries(const Engine& e, int64_t layer) {
  const ModelConfig& cfg = e.config();
  const EntryStore& st = e.caches()[size_t(layer)].entries;
  std::vector<float> k;
  const float* kf = st.rows.view(0, st.size(), k);
  const int64_t H = cfg.num_heads, Dh = cfg.head_dim, n = st.size();
  std::mt19937 g(3);
  std::normal_distribution<float> d;
  std::vector<float> q(static_cast<size_t>(H * Dh)), o(static_cast<size_t>(H * Dh)), mx(static_cast<size_t>(H)), sum(static_cast<size_t>(H));
  for (auto& v : q) v = d(g);
  return median_seconds([&] {
    const int64_t nt = std::min<int64_t>(H, omp_get_max_threads()), hb = (H + nt - 1) / nt;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nt; ++b) {
      static thread_local std::vector<float> logits;
      const int64_t h0 = b * hb, nh = std::min(hb, H - h0);
      if (nh > 0)
        attn_partial(q.data() + h0 * Dh, nh, Dh, nullptr, 0, kf, n, o.data() + h0 * Dh,
                     mx.data() + h0, sum.data() + h0, logits);
    }
  }, 3, 0.2);
}

Decode run_decode(Engine& e, int64_t n, const ContextBenchOptions& o, bool dense) {
  const RankGrid& g = e.grid();
  e.synthetic_context(n, o.seed);
  const ModelConfig& cfg = e.config();
  // The sparse layers: V4's CSA, V4.1's Shared (dense baseline: the first one's entries).
  const AttnKind sparse_kind = cfg.v41() ? AttnKind::Shared : AttnKind::CSA;
  int64_t csa = -1;
  for (int64_t l = 0; l < cfg.num_layers && csa < 0; ++l)
    if (cfg.attn[size_t(l)] == sparse_kind) csa = cfg.v41() ? cfg.shared.kv_of[size_t(l)] : l;
  std::vector<double> step, idx, topk, att, merge, sparse, attn, moe, head;
  int32_t next = 1;
  for (int64_t i = 0; i < o.decode_steps + 1; ++i) {  // the first step warms up
    const CpTimers a0 = e.attention().timers(), c0 = e.attention().timers(sparse_kind);
    const EngineTimers e0 = e.timers();
    g.world.barrier();
    const double t0 = comm::now();
    e.decode(&next);
    g.world.barrier();
    const double dt = comm::now() - t0;
    const CpTimers d = e.attention().timers() - a0, dc = e.attention().timers(sparse_kind) - c0;
    const EngineTimers e1 = e.timers();
    // The tail's view (it runs every part); a bcast keeps the reduction collective simple.
    double parts[3] = {e1.attention - e0.attention, e1.moe - e0.moe, e1.head - e0.head};
    g.cp_comm.bcast(parts, 3, e.attention().tail());
    if (i == 0) continue;
    attn.push_back(parts[0]);
    moe.push_back(parts[1]);
    head.push_back(parts[2]);
    step.push_back(dt);
    const comm::Reduced rd = comm::reduce_fields(g.world, d);  // the slowest rank's, per phase
    idx.push_back(rd["indexer"].max);
    topk.push_back(rd["topk"].max);
    att.push_back(rd["attend"].max);
    merge.push_back(rd["merge"].max);
    sparse.push_back(g.world.allreduce(dc.indexer + dc.topk + dc.attend + dc.merge, comm::Op::Max));
  }
  Decode r{median(step), median(idx), median(topk), median(att), median(merge), median(sparse),
           0, median(attn), median(moe), median(head)};
  r.cache_bytes_per_token = g.cp_comm.allreduce(double(e.cache_bytes()), comm::Op::Sum) / double(n);
  if (dense && csa >= 0) r.dense = dense_over_entries(e, csa);
  return r;
}

// Least-squares slope of log(y) over log(x).
double growth_exponent(const std::vector<int64_t>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = double(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = std::log(double(x[i])), b = std::log(std::max(y[i], 1e-12));
    sx += a;
    sy += b;
    sxx += a * a;
    sxy += a * b;
  }
  const double den = n * sxx - sx * sx;
  return den > 0 ? (n * sxy - sx * sy) / den : 0.0;
}

// Lines of a run on one rank (the baseline is then the whole story).
void print_solo(const ContextBenchOptions& o, const std::vector<Prefill>& p1,
                const std::vector<Decode>& d1) {
  for (size_t i = 0; i < o.prefill.size(); ++i)
    Line("context_prefill").add("tokens", o.prefill[i]).add("cp", int64_t(1))
        .add("wall_s", p1[i].wall).add("attn_cpu_s", p1[i].attn_cpu_max)
        .add("tok_s", double(o.prefill[i]) / p1[i].wall).print();
  for (size_t i = 0; i < o.decode.size(); ++i)
    Line("context_decode").add("context", o.decode[i]).add("cp", int64_t(1))
        .add("ms", d1[i].step * 1e3).add("indexer_ms", d1[i].indexer * 1e3)
        .add("topk_ms", d1[i].topk * 1e3).add("attend_ms", d1[i].attend * 1e3)
        .add("merge_ms", d1[i].merge * 1e3).add("csa_sparse_ms", d1[i].csa_sparse * 1e3)
        .add("csa_dense_ms", d1[i].dense * 1e3)
        .add("sparse_vs_dense", d1[i].dense / std::max(d1[i].csa_sparse, 1e-12), 3)
        .add("cache_bytes_per_token", d1[i].cache_bytes_per_token, 5).print();
}

// One prefill case at cp = W against the same prompt on one rank.
void print_prefill(const ContextBenchOptions& o, size_t i, size_t li, int W, const ModelConfig& cfg,
                   const Prefill& p, const Prefill& p1) {
  Line("context_prefill")
      .add("tokens", o.prefill[i])
      .add("cp", int64_t(W))
      .add("layout", o.layouts[li])
      .add("wall_s", p.wall)
      .add("cp1_wall_s", p1.wall)
      .add("efficiency", p1.wall / (W * p.wall), 3)
      .add("attn_cpu_max_s", p.attn_cpu_max)
      .add("attn_cpu_mean_s", p.attn_cpu_mean)
      .add("cp1_attn_cpu_s", p1.attn_cpu_max)
      .add("cpu_efficiency", p1.attn_cpu_max / (W * p.attn_cpu_max), 3)
      .add("imbalance", p.attn_cpu_max / p.attn_cpu_mean, 3)
      .note("attn_cpu_by_rank", p.attn_cpu_by_rank)
      .add("exchange_s", p.exch_s)
      .add("exchange_mib_per_layer", p.exch_bytes / cfg.num_layers / double(1 << 20))
      .add("moe_exchange_s", p.moe_exch_s)
      .print();
}

// One decode case at cp = W against the same context on one rank (b).
void print_decode(int64_t context, int W, const Decode& d, const Decode& b) {
  Line("context_decode")
      .add("context", context)
      .add("compute", std::string(compute_name(compute_mode())))
      .add("cp", int64_t(W))
      .add("ms", d.step * 1e3)
      .add("cp1_ms", b.step * 1e3)
      .add("ratio_vs_cp1", d.step / b.step, 3)
      .add("indexer_ms", d.indexer * 1e3)
      .add("topk_ms", d.topk * 1e3)
      .add("attend_ms", d.attend * 1e3)
      .add("merge_ms", d.merge * 1e3)
      .add("tail_attention_ms", d.attention * 1e3)
      .add("tail_moe_ms", d.moe * 1e3)
      .add("tail_head_ms", d.head * 1e3)
      .add("cp1_indexer_ms", b.indexer * 1e3)
      .add("cp1_attend_ms", b.attend * 1e3)
      .add("cp1_attention_ms", b.attention * 1e3)
      .add("cp1_moe_ms", b.moe * 1e3)
      .add("cp1_head_ms", b.head * 1e3)
      .add("csa_sparse_ms", d.csa_sparse * 1e3)
      .add("cp1_csa_sparse_ms", b.csa_sparse * 1e3)
      .add("csa_dense_ms", b.dense * 1e3)
      .add("sparse_vs_dense", b.dense / std::max(d.csa_sparse, 1e-12), 3)
      .add("cache_bytes_per_token", d.cache_bytes_per_token, 5)
      .print();
}

}  // namespace

int context_bench(const ContextBenchOptions& opt) {
  ContextBenchOptions o = opt;
  if (o.phase == "decode") o.prefill.clear();
  if (o.phase == "prefill") o.decode.clear();
  const comm::Comm world = comm::Comm::world();
  const int W = world.size(), me = world.rank();
  set_compute_threads(o.threads);
  pin_if_oversubscribed(world, threads_here());
  set_compute(resolve_compute(compute_choices().parse(o.compute)));
  ModelSource ms = resolve_model(o.model, context_sets(o));
  const ModelConfig& cfg = ms.cfg;

  // The baseline: the sequence on world rank 0 alone (cp = 1, ep = 1), first, while the other
  // ranks wait asleep so they leave it the cores.
  std::vector<Prefill> p1(o.prefill.size());
  std::vector<Decode> d1(o.decode.size());
  {
    comm::Comm solo = world.split(me == 0 ? 0 : 1, me);
    if (me == 0) {
      RankGrid g1 = RankGrid::make_on(std::move(solo), 1, 1);
      auto e = bench_engine(ms, g1, o, CpLayout::Contiguous);
      for (size_t i = 0; i < o.prefill.size(); ++i) p1[i] = run_prefill(*e, o.prefill[i], o.seed);
      for (size_t i = 0; i < o.decode.size(); ++i) d1[i] = run_decode(*e, o.decode[i], o, true);
    }
    world.barrier_idle();
  }
  std::vector<double> dec1;
  for (auto& d : d1) dec1.push_back(d.step);
  auto print_decode_fit = [&](const char* which, const std::vector<double>& t) {
    if (me != 0 || o.decode.size() < 2) return;
    Line("context_decode_growth")
        .add("cp", which)
        .add("contexts", int64_t(o.decode.size()))
        .add("exponent", growth_exponent(o.decode, t), 3)
        .print();
  };
  if (W == 1) {  // the baseline is the whole story
    print_solo(o, p1, d1);
    print_decode_fit("1", dec1);
    return 0;
  }

  RankGrid grid = RankGrid::make(W, W);
  std::vector<double> decC;
  for (size_t li = 0; li < o.layouts.size(); ++li) {
    const CpLayout layout = layout_choices().parse(o.layouts[li]);
    auto e = bench_engine(ms, grid, o, layout);
    for (size_t i = 0; i < o.prefill.size(); ++i) {
      const Prefill p = run_prefill(*e, o.prefill[i], o.seed);
      if (me != 0) continue;
      print_prefill(o, i, li, W, cfg, p, p1[i]);
    }
    if (li != 0) continue;  // decode does not depend on the prefill layout
    for (size_t i = 0; i < o.decode.size(); ++i) {
      const Decode d = run_decode(*e, o.decode[i], o, false);
      decC.push_back(d.step);
      if (me != 0) continue;
      print_decode(o.decode[i], W, d, d1[i]);
    }
  }
  print_decode_fit("1", dec1);
  print_decode_fit(std::to_string(W).c_str(), decC);
  return 0;
}

}  // namespace modelone::bench
