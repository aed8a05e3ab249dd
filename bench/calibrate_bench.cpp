// `modelone bench calibrate`: the order of the work and the profile written (see calibrate.h).
// Kernels are timed on world rank 0 alone while the other ranks wait asleep (a rank's own costs;
// `plan` stretches them where ranks share cores), then every rank times the collectives.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <unistd.h>

#include "bench/bench_report.h"
#include "bench/bench_util.h"
#include "bench/calibrate.h"
#include "comm/comm.h"
#include "dist/binding.h"
#include "dist/build_info.h"
#include "dist/grid.h"
#include "dist/engine.h"
#include "dist/engine_setup.h"
#include "dist/plan/cost_model.h"
#include "model/base/check.h"
#include "model/io/model_source.h"
#include "model/kernels/linear.h"

namespace modelone::bench {

namespace {

void print_curve(const char* part, const std::string& key, const char* cls, const CostCurve& c,
                 const char* unit) {
  for (size_t i = 0; i < c.size.size(); ++i)
    Line("calibrate").add("part", std::string(part)).add("key", key).add("class", std::string(cls))
        .add("size", int64_t(c.size[i])).add(unit, 1e-9 / c.per_unit[i]).print();
}

void print_classes(const char* part, const std::string& key, const ProductCosts& p) {
  for (const ProductClass& c : p.classes)
    print_curve(part, key, (std::to_string(int64_t(c.bytes) >> 10) + "KiB").c_str(), c.curve, "gflops");
}

// The two models the fixed costs are fitted on: narrow (tiny) and wide (V4-Flash's layer
// width; one window, one CSA and one HCA layer as V4 mixes them; 8 experts; a small vocabulary
// so the head stays small).
struct Anchor {
  const char* model;
  std::vector<std::string> sets;
};
const Anchor kAnchors[2] = {
    {"tiny", {}},
    {"v4-flash", {"num_hidden_layers=3", "n_routed_experts=8", "vocab_size=4096",
                  "layer_types=sliding_attention,compressed_sparse_attention,heavily_compressed_attention"}}};

// The decode steps right after a prefill run slow, and a generation's steps after them do not:
// tiny's steps after a 2048-token prefill, medians of 7 reps, took 0.43, 0.19, 0.17, 0.20 ms,
// then 0.159-0.184 (0.163 the median of steps 4-31; the wide anchor's 59-62 ms from the first).
// The median of the first 8 read 0.175, and plan priced tiny's decodes 12-18% over `bench
// engine`'s (the median of 16 steps) in six rounds of plan_check. So kWarmSteps go untimed.
constexpr int kWarmSteps = 2, kTimedSteps = 8;

// Medians of a prefill of n tokens, of the decode steps after it (past the warm ones) and of each
// one's time outside the engine's part timers, on one rank.
AnchorStep anchor_steps(const comm::Comm& solo, const ModelSource& ms, int64_t n, int reps) {
  RankGrid g = RankGrid::make_on(solo.split(0, 0), 1, 1);
  EngineOptions eo;
  eo.kv_dtype = kv_cache_dtype(kv_cache_choices().parse("auto"), ms.cfg, compute_mode());
  auto e = make_engine(ms, g, eo);
  std::mt19937 rng(7);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = int32_t(rng() % uint32_t(ms.cfg.vocab_size));
  const auto timed = [&] {
    const EngineTimers& t = e->timers();
    return t.attention + t.moe + t.head + t.engram;
  };
  std::vector<double> pre, dec, untimed, pre_untimed, pre_attn, pre_moe, dec_attn, dec_moe;
  for (int rep = 0; rep < reps + 1; ++rep) {  // the first is a warm-up
    e->reset();
    const EngineTimers p0 = e->timers();
    const double p_in0 = timed(), t0 = comm::now();
    e->prefill(ids);
    const double pt = comm::now() - t0;
    if (rep > 0) {
      pre.push_back(pt), pre_untimed.push_back(std::max(0.0, pt - (timed() - p_in0)));
      pre_attn.push_back(e->timers().attention - p0.attention), pre_moe.push_back(e->timers().moe - p0.moe);
    }
    int32_t next = ids.back();
    for (int i = 0; i < kWarmSteps + kTimedSteps; ++i) {
      const EngineTimers d0 = e->timers();
      const double in0 = timed(), s0 = comm::now();
      e->decode(&next);
      const double dt = comm::now() - s0;
      if (rep == 0 || i < kWarmSteps) continue;
      dec.push_back(dt), untimed.push_back(std::max(0.0, dt - (timed() - in0)));
      dec_attn.push_back(e->timers().attention - d0.attention), dec_moe.push_back(e->timers().moe - d0.moe);
    }
  }
  return {median(pre), median(dec), median(untimed), median(pre_untimed),
          median(dec_attn), median(dec_moe), median(pre_attn), median(pre_moe)};
}

// The rows of an anchor's prefill. The narrow one's at a prompt's size: at 256 rows its loops
// over rows stay under the work that splits over threads (256 rows of its 128-wide hidden state
// are a quarter of kMinWorkPerThread), and `bench engine`'s tiny prefill of 256 tokens took 10.0
// ms on two threads against 10.2-10.5 on one, of 2048 tokens 78-79 against 106-113: a per-row
// cost fitted at 256 rows priced 2048-token prompts 25% slow on two threads. The wide one's loops
// split at any rows, and its prefill takes seconds.
int64_t anchor_rows(int anchor, bool quick) {
  if (anchor == 0) return quick ? 512 : 2048;
  return quick ? 128 : 256;
}

// Both anchors' prefill and the decode steps after it, on one rank.
AnchorTimes measure_anchors(const comm::Comm& solo, bool quick) {
  AnchorTimes a{};
  for (int i = 0; i < 2; ++i)
    a[size_t(i)] = anchor_steps(solo, resolve_model(kAnchors[i].model, kAnchors[i].sets), anchor_rows(i, quick),
                                quick ? 5 : 7);
  return a;
}

// Both anchors priced by plan with the profile as it stands (prof.fixed[t] included); parts:
// the wide anchor's decode step and prefill.
std::array<AnchorFit, 2> price_anchors(const MachineProfile& prof, int t, bool quick, const AnchorTimes& times,
                                       std::array<StepCost, 2>* parts) {
  std::array<AnchorFit, 2> an;
  for (size_t i = 0; i < 2; ++i) {
    const ModelSource ms = resolve_model(kAnchors[i].model, kAnchors[i].sets);
    PlanLayout l;
    l.threads = t;
    PlanWork work;
    work.context = anchor_rows(int(i), quick);
    work.compute = prof.compute;
    const PlanPrediction p = predict(ms.cfg, l, work, prof, NetworkModel{});
    an[i] = {double(layer_width(ms.cfg)), double(ms.cfg.num_layers), times[i], p.ttft_seconds, p.decode.total(),
             double(work.context)};
    if (i == 1 && parts) *parts = {p.decode, p.prefill};
  }
  return an;
}

// The part scales fitted on the wide anchor's parts priced without them; then both anchors priced
// with the scales and the fixed costs fitted on what their measured steps took beyond that
// (calibrate_fixed.cpp). Fitted before the scales, the narrow anchor's fixed cost held its parts'
// unscaled time, and the scales (1.05-1.22 on decode here) then priced tiny's decode 5% over its
// own anchor (0.1835 ms against 0.1755).
EngineFixed fit_fixed(MachineProfile& prof, int t, bool quick, const AnchorTimes& times) {
  prof.fixed[t] = {};
  std::array<StepCost, 2> unscaled;
  price_anchors(prof, t, quick, times, &unscaled);
  EngineFixed scales;
  fit_part_scales(times[1], unscaled[0], unscaled[1], &scales);
  prof.fixed[t] = scales;
  const std::array<AnchorFit, 2> an = price_anchors(prof, t, quick, times, nullptr);
  FixedFitOut fit;
  const EngineFixed f = fit_engine_fixed(an, &fit, scales);
  Line("calibrate").add("part", std::string("scales")).add("threads", int64_t(t))
      .add("attention_decode", f.attention_decode, 3).add("moe_decode", f.moe_decode, 3)
      .add("attention_prefill", f.attention_prefill, 3).add("moe_prefill", f.moe_prefill, 3).print();
  for (size_t i = 0; i < 2; ++i)
    Line("calibrate").add("part", std::string("fixed")).add("model", std::string(kAnchors[i].model))
        .add("threads", int64_t(t)).add("width", int64_t(an[i].width)).add("prefill_ms", an[i].measured.prefill * 1e3)
        .add("decode_ms", an[i].measured.decode * 1e3).add("untimed_decode_ms", an[i].measured.decode_untimed * 1e3)
        .add("untimed_prefill_ms", an[i].measured.prefill_untimed * 1e3)
        .add("priced_prefill_ms", an[i].priced_prefill * 1e3).add("priced_decode_ms", an[i].priced_decode * 1e3)
        .add("per_layer_us", fit.per_layer_s[i] * 1e6).add("per_row_us", fit.per_row_s[i] * 1e6).print();
  return f;
}

// One pass: every kernel part at every thread count, a part's thread counts one after another
// (a drift of the machine between parts then moves a part's thread counts together rather than
// skewing one count against another: 1 against 2 threads was timed up to minutes apart when each
// count ran every part in turn, and once read the streamed product no faster at 2 threads than
// at 1).
void kernel_pass(const CalibrateBenchOptions& o, MachineProfile& prof) {
  for (const std::string& d : o.dtypes)
    for (int t : prof.threads) {
      set_compute_threads(t);
      prof.products[MachineProfile::key(prof.compute, d, t)] = calibrate_products(d, o);
    }
  if (prof.compute != "bf16") prof.experts = prof.products;  // fp32: experts run as products
  for (const std::string& d : prof.compute == "bf16" ? o.dtypes : std::vector<std::string>{})
    for (int t : prof.threads) {
      set_compute_threads(t);
      prof.experts[MachineProfile::key(prof.compute, d, t)] = calibrate_experts(d, o);
    }
  for (int t : prof.threads) {
    set_compute_threads(t);
    prof.attention[t] = calibrate_attention(o);
  }
  for (int t : prof.threads) prof.read_gbps[t] = read_bandwidth_gbps(t);
}

void print_kernels(const MachineProfile& prof) {
  for (auto& [k, p] : prof.products) print_classes("product", k, p);
  for (auto& [k, p] : prof.experts) print_classes("experts", k, p);
  for (auto& [t, a] : prof.attention) {
    const std::string tk = std::to_string(t);
    for (const auto& [cls, c] : {std::pair{"16_queries", &a.many}, std::pair{"1_query", &a.one}}) {
      print_curve("attend", tk, cls, c->partial, "g_key_heads_per_s");
      print_curve("attend_key", tk, cls, c->partial_key, "g_keys_per_s");
      print_curve("index", tk, cls, c->index, "g_key_dims_per_s");
      print_curve("index_key", tk, cls, c->index_key, "g_keys_per_s");
    }
  }
  for (auto& [t, g] : prof.read_gbps)
    Line("calibrate").add("part", std::string("read")).add("threads", int64_t(t)).add("gbps", g).print();
}

// Each cpu's pace read now (one thread), printed; `when` says at which pass. *memory gets the
// read rate of every cpu the job holds streaming at once: a core alone cannot show a neighbour
// on the memory channels (this VM: one core 26 GB/s throughout, both 35 or 55 by the minute).
std::vector<double> read_cores(const CalibrateBenchOptions& o, const std::string& when,
                               std::vector<double>* memory) {
  set_compute_threads(1);
  const std::vector<double> gflops = core_gflops(o);
  std::string each;
  for (double g : gflops) {
    if (!each.empty()) each += '/';
    each += std::to_string(std::lround(g));
  }
  Line("calibrate").add("part", std::string("cores")).add("when", when).add("gflops", each)
      .add("slowest_pace", slowest_pace(gflops), 3).print();
  const int cpus = int(bound_cpus().size());
  memory->push_back(read_bandwidth_gbps(cpus));
  Line("calibrate").add("part", std::string("memory")).add("when", when).add("cpus", int64_t(cpus))
      .add("gbps", memory->back()).print();
  return gflops;
}

// Rank 0's kernels in whole passes, one at a time (the node's ranks time `together` between
// them), then each point's median over the passes run on even cores and the fixed costs: fitted
// last, as they price the anchors' steps with the parts above.
struct KernelPasses {
  KernelPasses(const CalibrateBenchOptions& opts, MachineProfile& p) : o(opts), prof(p) {}
  const CalibrateBenchOptions& o;
  MachineProfile& prof;
  std::vector<MachineProfile> done;
  std::map<int, std::vector<AnchorTimes>> anchors;
  std::vector<bool> even;
  std::vector<double> cores;   // each cpu's GFLOPS, read after the last pass
  std::vector<double> memory;  // every cpu streaming at once, GB/s, each reading

  void pass(const comm::Comm& solo, int k, int passes) {
    if (k == 0) cores = read_cores(o, "start", &memory);
    const bool even_before = slowest_pace(cores) >= MachineProfile::kEvenCorePace;
    done.push_back(prof);
    kernel_pass(o, done.back());
    for (int t : prof.threads) {
      set_compute_threads(t);
      anchors[t].push_back(measure_anchors(solo, o.quick));
    }
    cores = read_cores(o, "pass " + std::to_string(k + 1), &memory);
    even.push_back(even_before && slowest_pace(cores) >= MachineProfile::kEvenCorePace);
    if (passes > 1) std::fprintf(stderr, "calibrate: kernel pass %d of %d done\n", k + 1, passes);
  }
  void finish() {
    keep_even_passes(even, &done, &anchors);
    keep_medians(done, &prof);
    print_kernels(prof);
    for (int t : prof.threads) {
      set_compute_threads(t);
      prof.fixed[t] = fit_fixed(prof, t, o.quick, median_anchors(anchors[t]));
    }
  }
};

// Rank 0 alone on the node's cpus the job holds while f runs, whatever core the launcher bound it
// to, then back: 2 threads timed on the one core mpirun -np 2 binds it to priced 2 threads as 1
// (the V4-Flash anchor's prefill 2316 ms at 2 threads, 2263 at 1; on both cores 1170).
void on_job_cpus(const std::vector<int>& job, bool say, const std::function<void()>& f) {
  const std::vector<int> was = bound_cpus();
  bind_process(job);
  if (say)
    Line("calibrate").add("part", std::string("cpus")).add("bound", cpu_list_text(was))
        .add("timed_on", cpu_list_text(job)).print();
  f();
  bind_process(was);
}

// The median of each point over the passes, printed.
Together together_over_passes(const std::vector<Together>& each, int me) {
  const Together out = median_together(each);
  if (me == 0)
    for (size_t i = 0; i < out.slowdown.size.size(); ++i)
      Line("calibrate").add("part", std::string("together")).add("ranks", int64_t(out.ranks))
          .add("rows", int64_t(out.slowdown.size[i])).add("slowdown", out.slowdown.per_unit[i], 3).print();
  return out;
}

void print_together_pass(const Together& t, int k) {
  std::string each;
  for (double x : t.slowdown.per_unit) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%.3g", each.empty() ? "" : "/", x);
    each += b;
  }
  Line("calibrate").add("part", std::string("together_pass")).add("pass", int64_t(k + 1))
      .add("ranks", int64_t(t.ranks)).add("slowdowns", each).print();
}

// job: the cpus this job's ranks hold on rank 0's node (rank 0 times every thread count on them);
// rank 0 says where the default leaves cores out.
std::vector<int> thread_counts(const CalibrateBenchOptions& o, const std::vector<int>& job, int rank) {
  std::vector<int> t;
  for (int64_t x : o.threads) t.push_back(int(x));
  // Default: 1 .. the job's cpus on the node (rank 0 times the kernels alone while the others sleep).
  const int64_t online = sysconf(_SC_NPROCESSORS_ONLN), held = int64_t(job.size());
  if (t.empty()) {
    for (int64_t x = 1; x <= std::min<int64_t>(max_threads_per_rank(), held); ++x) t.push_back(int(x));
    if (held < online && rank == 0)
      std::fprintf(stderr, "calibrate: this job's ranks hold %lld of the node's %lld cpus (%s): threads 1..%lld "
                   "(mpirun binds one or two ranks to a core each: --bind-to none gives them all)\n",
                   (long long)held, (long long)online, cpu_list_text(job).c_str(), (long long)held);
  }
  std::sort(t.begin(), t.end());
  t.erase(std::unique(t.begin(), t.end()), t.end());
  return t;
}

// Removes the links named prefix* (a --links-as run replaces its own set).
void drop_links(std::map<std::string, LinkFit>* links, const std::string& prefix) {
  for (auto it = links->begin(); it != links->end();) it = it->first.rfind(prefix, 0) == 0 ? links->erase(it) : std::next(it);
}

void print_links(const MachineProfile& prof) {
  for (auto& [k, f] : prof.links)
    for (size_t i = 0; i < f.ranks.size(); ++i)
      Line("calibrate").add("part", std::string("link")).add("key", k).add("ranks", int64_t(f.ranks[i]))
          .add("latency_us", f.latency_s[i] * 1e6).add("gbps", f.gbps[i]).print();
}

// Every rank's checks, agreed, before any work; with --links-as, the profile to add to.
// node: this rank's node's ranks; job: the cpus they hold.
MachineProfile start_profile(const comm::Comm& world, const comm::Comm& node, const CalibrateBenchOptions& o,
                             const std::vector<int>& job) {
  MachineProfile prof;
  comm::agree(world, [&] {
    // Rank 0 times each thread count on every cpu the job holds on its node; more threads than
    // those would take turns on them and price the node's cores as fewer.
    for (int64_t t : o.threads)
      MO_REQUIRE(world.rank() != 0 || t <= int64_t(job.size()), "--threads ", t, ": this job's ranks hold ",
                 job.size(), " cpu(s) on this node (", cpu_list_text(job), "); mpirun binds one or two ranks "
                 "to a core each: launch with --bind-to none, or more ranks");
    MO_REQUIRE(std::count(o.dtypes.begin(), o.dtypes.end(), "bf16") == 1,
               "--dtypes must hold bf16 once (the engine's fixed costs are fitted on bf16 weights)");
    if (!o.links_as.empty()) {
      MO_REQUIRE(std::ifstream(o.out).good(), "--links-as ", o.links_as, " adds the collectives to the "
                 "profile --out names, which does not exist: make it first with `bench calibrate --out ", o.out, "`");
      prof = read_machine_profile(o.out, executable_hash());
    }
    if (o.links_as == "cores") {
      const long cores = sysconf(_SC_NPROCESSORS_ONLN);
      MO_REQUIRE(node.size() >= 2 && node.size() <= cores, "--links-as cores times a node's collectives "
                 "with its ranks within its cores: this node has ", node.size(), " rank(s) and ", cores,
                 " cores (launch 2 .. ", cores, " ranks a node)");
    }
    if (world.rank() == 0) {  // writable? (a file made for the check alone is removed)
      const bool existed = std::filesystem::exists(o.out);
      MO_REQUIRE(std::ofstream(o.out, std::ios::app).good(), "--out ", o.out, ": cannot be written");
      if (!existed) std::filesystem::remove(o.out);
    }
  });
  return prof;
}

}  // namespace

int calibrate_bench(const CalibrateBenchOptions& o) {
  const comm::Comm world = comm::Comm::world();
  const int me = world.rank();
  comm::Comm node = world.split_shared();
  const std::vector<int> job = node_job_cpus(node);
  MachineProfile prof = start_profile(world, node, o, job);
  if (o.links_as == "inter") {
    // The world's collectives as links between nodes: a run across nodes, or one node under
    // `--mca btl self,tcp` standing in for a network.
    set_compute_threads(1);
    pin_if_oversubscribed(world, 1);
    drop_links(&prof.links, "inter.");
    calibrate_links(world, "inter", 0, o, &prof.links);
  } else if (o.links_as == "cores") {
    // The node's collectives with MPI spinning, as in runs whose ranks fit the cores (a world
    // past them makes Open MPI yield in every wait).
    set_compute_threads(1);
    drop_links(&prof.links, "intra_cores.");
    calibrate_links(node, "intra_cores", int(sysconf(_SC_NPROCESSORS_ONLN)), o, &prof.links);
  } else {
    prof.build = executable_hash();
    prof.compute = compute_name(resolve_compute(compute_choices().parse(o.compute)));
    set_compute(resolve_compute(compute_choices().parse(o.compute)));
    prof.threads = thread_counts(o, job, me);
    // Rank 0 times the kernels alone while the others sleep; then the node's ranks time
    // `together`, placed as run places them: the links and polling measured so too.
    KernelPasses kp(o, prof);
    comm::Comm solo = world.split(me == 0 ? 0 : 1, me);
    const int passes = o.passes > 0 ? o.passes : o.quick ? 1 : 3;
    const int cores = int(sysconf(_SC_NPROCESSORS_ONLN));
    std::vector<Together> together;
    for (int k = 0; k < passes; ++k) {
      if (me == 0) on_job_cpus(job, k == 0, [&] { kp.pass(solo, k, passes); });
      world.barrier_idle();
      set_compute_threads(1);
      if (k == 0) pin_if_oversubscribed(world, 1);
      together.push_back(calibrate_together(node, cores, o));
      if (me == 0 && passes > 1 && together.back().ranks > 1) print_together_pass(together.back(), k);
    }
    if (me == 0) kp.finish();
    prof.together = together_over_passes(together, me);
    calibrate_links(node, "intra", cores, o, &prof.links);
    prof.poll_share = calibrate_poll_share(node, cores);
    if (me == 0)
      Line("calibrate").add("part", std::string("poll_share")).add("ranks", int64_t(node.size()))
          .add("share", prof.poll_share).print();
    if (node.size() < world.size()) {  // several nodes: one rank of each, across the network
      comm::Comm leaders = world.split(node.rank() == 0 ? 0 : 1, me);
      if (node.rank() == 0) calibrate_links(leaders, "inter", 0, o, &prof.links);
      world.barrier_idle();
    }
    prof.machine = this_machine().json();
    if (!kp.cores.empty()) prof.machine["core_gflops"] = kp.cores;
    if (!kp.memory.empty()) prof.machine["memory_gbps"] = kp.memory;
  }
  if (me != 0) return 0;
  print_links(prof);
  write_machine_profile(o.out, prof);
  std::fprintf(stderr, "calibrate: wrote %s (%zu product tables, %zu links; for this build only)\n",
               o.out.c_str(), prof.products.size(), prof.links.size());
  if (prof.links_only_past_cores())
    std::fprintf(stderr, "calibrate: the node's collectives were timed with %d ranks on %ld cores (MPI yields in "
                 "every wait): for layouts within the cores add theirs with `mpirun -np %ld modelone bench "
                 "calibrate --links-as cores --out %s`\n", node.size(), sysconf(_SC_NPROCESSORS_ONLN),
                 sysconf(_SC_NPROCESSORS_ONLN), o.out.c_str());
  return 0;
}

}  // namespace modelone::bench
