// `modelone plan`: what N nodes will do with a model before anyone books them. Reads the
// machine profile of `bench calibrate`, prices the layouts (dist/plan/) and prints the best ones
// with memory per rank, prefill tokens/s, time to first token, decode ms/token and tokens/s,
// and the per-part breakdown; --sweep-nodes gives the best layout at 1 .. 256 nodes.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "comm/comm.h"
#include "dist/build_info.h"
#include "dist/cli/commands.h"
#include "dist/cli/plan_report.h"
#include "dist/cli/validators.h"
#include "dist/plan/plan_search.h"
#include "model/base/check.h"
#include "model/cache/layer_cache.h"
#include "model/io/model_source.h"
#include "model/io/weight_sizes.h"

namespace modelone {

void add_plan_command(CLI::App* app, PlanOptions* o) {
  CLI::App* p = app->add_subcommand("plan", "Predict memory, prefill and decode of a layout on N "
                                            "nodes from a machine profile (`bench calibrate`)");
  p->add_option("--model", o->model, "Preset, .pbtxt config or checkpoint directory")->required();
  p->add_option("--set", o->sets, "Override a config field: key=value (repeatable)");
  p->add_option("--machine", o->machine, "Machine profile from `modelone bench calibrate --out` "
                "(default machine.json)");
  p->add_option("--nodes", o->nodes, "Nodes (default 1)")->check(count_in(1, 1 << 16));
  p->add_option("--ranks-per-node", o->ranks_per_node, "Ranks per node (default: searched over "
                "the divisors of --cores-per-node)")->check(count_in(1, 1024));
  p->add_option("--threads", o->threads, "Threads per rank (default: the node's cores over its "
                "ranks)")->check(count_in(1, 1024));
  p->add_option("--cores-per-node", o->cores_per_node, "Cores of a node (default: the profile's "
                "machine); ranks x threads past it share them")->check(count_in(1, 1 << 16));
  p->add_option("--node-memory", o->node_memory_gib, "GiB of memory per node, shared by its ranks "
                "(default: this machine's)")->check(CLI::Range(0.001, 1048576.0));
  p->add_option("--context", o->context, "Prompt tokens and decode context (default 4096)")
      ->check(count_in(1, int64_t(1) << 24));
  p->add_option("--batch", o->batch, "Sequences at once (default 1)")->check(count_in(1, 1 << 20));
  p->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per rank per step (default 2048)")
      ->check(count_in(1, int64_t(1) << 24));
  p->add_option("--cp", o->cp, "Context-parallel ranks (default: searched)")->check(count_in(1, 1 << 20));
  p->add_option("--ep", o->ep, "Expert-parallel ranks (default: searched)")->check(count_in(1, 1 << 20));
  p->add_option("--engram-ranks", o->engram_ranks, "Ranks holding the Engram tables (default "
                "max(cp, ep))")->check(count_in(1, 1 << 20));
  p->add_option("--network", o->network, "Links between nodes: Gb/s and latency, e.g. 25g,5us, "
                "100g, 400g,1us (default 100g,2us)");
  p->add_option("--goal", o->goal, "What the search ranks by: ttft, decode (ms/token) or "
                "throughput (decode tokens/s)")->check(CLI::IsMember({"ttft", "decode", "throughput"}));
  p->add_option("--weights", o->weights, "Weights as stored (default) or in DeepSeek's release "
                "format (FP8 projections, FP4 experts)")->check(CLI::IsMember({"stored", "release"}));
  add_kv_cache_option(p, &o->kv_cache, "KV cache storage (auto as run chooses it)");
  p->add_option("--top", o->top, "Layouts shown (default 8)")->check(count_in(1, 100000));
  p->add_flag("--allow-other-build", o->other_build, "Read a profile another build made (its "
              "kernels may cost otherwise: a warning)");
  p->add_flag("--sweep-nodes", o->sweep_nodes, "The best layout at 1, 2, 4 .. 256 nodes");
  CLI::Option* out = p->add_option("--output", o->output, "text, md, csv or json")
      ->check(CLI::IsMember({"text", "md", "csv", "json"}));
  p->add_flag("--json", o->json, "One JSON object (the same as --output json)")->excludes(out);
}

namespace {

double this_machine_memory() {
  return double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
}

PlanQuery make_query(const PlanOptions& o, const ModelSource& ms, const MachineProfile& prof) {
  const ModelConfig& c = ms.cfg;
  PlanQuery q;
  q.layout = {o.nodes, o.ranks_per_node, o.threads, o.cp, o.ep, o.engram_ranks};
  q.work.context = o.context, q.work.batch = o.batch, q.work.prefill_chunk = o.prefill_chunk;
  q.work.compute = prof.compute;
  const bool release = o.weights == "release" || (ms.checkpoint && c.weight_dtype != DType::BF16);
  q.work.dense_dtype = release ? "fp8" : "bf16";
  q.work.expert_dtype = release ? "fp4" : "bf16";
  q.weights = release ? release_weight_bytes(c)
                      : ms.checkpoint ? checkpoint_weight_bytes(c, *ms.checkpoint)
                                      : uniform_weight_bytes(c, c.weight_dtype);
  const bool profile_cores = prof.machine.contains("cores") && prof.machine["cores"].is_number_integer();
  q.work.cores_per_node = o.cores_per_node > 0 ? o.cores_per_node
                          : profile_cores      ? prof.machine["cores"].get<int>() : 0;
  q.kv_dtype = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), c,
                              prof.compute == "bf16" ? Compute::BF16 : Compute::F32);
  q.node_memory_bytes = (o.node_memory_gib > 0 ? o.node_memory_gib * double(1ll << 30) : this_machine_memory());
  q.net = parse_network(o.network);
  q.goal = o.goal;
  return q;
}

// A profile calibrated while the node's cores ran at different paces (bench calibrate's
// core_gflops) prices the fast ones: said, as its prices may not hold for a layout over every core;
// so is one calibrated while the node's memory moved (memory_gbps), and one whose collectives were
// timed only with MPI yielding (more ranks than cores).
void warn_uneven_machine(const std::string& path, const MachineProfile& prof) {
  const double pace = prof.slowest_core_pace();
  if (pace < MachineProfile::kEvenCorePace)
    std::fprintf(stderr, "plan: warning: %s was calibrated while the node's cores ran unevenly (the slowest "
                 "at %.2f of the fastest): a layout over every core may run at the slowest's pace\n",
                 path.c_str(), pace);
  // A neighbour on the node's memory channels moves what decode (bound by memory) costs when
  // every core streams, and no single price holds for both states.
  const auto [lo, hi] = prof.memory_range();
  if (lo > 0 && hi > MachineProfile::kSteadyMemory * lo)
    std::fprintf(stderr, "plan: warning: %s was calibrated while the node's memory, every cpu streaming, read "
                 "%.0f-%.0f GB/s: a decode over every core may run up to %.2fx faster or slower than priced\n",
                 path.c_str(), lo, hi, hi / lo);
  if (prof.links_only_past_cores())
    std::fprintf(stderr, "plan: warning: %s timed the node's collectives with more ranks than cores (MPI "
                 "yielding in every wait): layouts within the cores are priced with them, slower than they "
                 "run; add theirs with `mpirun -np %d modelone bench calibrate --links-as cores --out %s`\n",
                 path.c_str(), prof.machine.value("cores", 2), path.c_str());
}

}  // namespace

int plan_command(const PlanOptions& o) {
  // Every rank reads and checks (plan may run under mpirun); rank 0 prints.
  MachineProfile prof;
  ModelSource ms;
  PlanQuery q;
  std::vector<PlanRow> rows, best;
  comm::agree(comm::Comm::world(), [&] {
    prof = read_machine_profile(o.machine, o.other_build ? "" : executable_hash());
    ms = resolve_model(o.model, o.sets);
    q = make_query(o, ms, prof);
    if (!o.sweep_nodes) {
      rows = plan_search(ms.cfg, q, prof);
      return;
    }
    for (int n = 1; n <= 256; n *= 2) {  // the best layout at each node count
      q.layout.nodes = n;
      best.push_back(plan_search(ms.cfg, q, prof).front());
    }
  });
  if (comm::Comm::world().rank() != 0) return 0;
  if (o.other_build && prof.build != executable_hash())
    std::fprintf(stderr, "plan: warning: %s was made by another build (%s); its costs may not hold\n",
                 o.machine.c_str(), prof.build.c_str());
  warn_uneven_machine(o.machine, prof);
  const PlanReport rep{ms.cfg, q, prof, o.json ? "json" : o.output, o.top};
  if (o.sweep_nodes) print_plan_sweep(rep, best);
  else print_plan(rep, rows);
  return 0;
}

}  // namespace modelone
