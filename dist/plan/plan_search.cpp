// Layouts, their memory and their ranking (see plan_search.h).
#include "dist/plan/plan_search.h"

#include <algorithm>
#include <cmath>

#include "model/base/check.h"

namespace modelone {

namespace {
std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}
}  // namespace

std::vector<PlanLayout> plan_layouts(const ModelConfig& cfg, const PlanQuery& q) {
  const PlanLayout& g = q.layout;
  std::vector<std::pair<int, int>> rt;  // ranks per node x threads
  if (g.ranks_per_node > 0 && g.threads > 0) {
    rt.push_back({g.ranks_per_node, g.threads});
  } else {
    const int cores = q.work.cores_per_node;
    MO_REQUIRE(cores > 0, "plan: give --ranks-per-node and --threads, or --cores-per-node to search them");
    for (int r : divisors(cores)) {
      if (g.ranks_per_node > 0 && r != g.ranks_per_node) continue;
      const int t = g.threads > 0 ? g.threads : cores / r;
      rt.push_back({r, t});
    }
    MO_REQUIRE(!rt.empty(), "--ranks-per-node ", g.ranks_per_node, " does not divide --cores-per-node ", cores);
  }
  std::vector<PlanLayout> out;
  for (auto [r, t] : rt) {
    PlanLayout l = g;
    l.ranks_per_node = r, l.threads = t;
    const int W = l.world();
    for (int cp : g.cp > 0 ? std::vector<int>{g.cp} : divisors(W))
      for (int ep : g.ep > 0 ? std::vector<int>{g.ep} : divisors(W)) {
        l.cp = cp, l.ep = ep;
        if (g.cp > 0 && g.ep > 0) {
          check_plan_layout(cfg, l);  // the one layout asked for: say what is wrong with it
        } else if (W % cp || W % ep || (ep % cp && cp % ep) || ep > cfg.n_experts) {
          continue;
        }
        out.push_back(l);
      }
  }
  MO_REQUIRE(!out.empty(), "plan: no layout of ", g.nodes, " nodes fits the flags given");
  return out;
}

PlanRow plan_row(const ModelConfig& cfg, const PlanQuery& q, const PlanLayout& l,
                 const MachineProfile& prof) {
  PlanRow r;
  r.layout = l;
  r.memory = rank_memory(cfg, q.work.context, q.weights, q.kv_dtype, l.cp, l.ep);
  if (l.engram_ranks > 0 && cfg.engram.enabled()) r.memory.engram_bytes = engram_share_bytes(cfg, l.engram_ranks);
  // A rank holds its share of every sequence of its dp group.
  const int64_t seqs = (q.work.batch + l.dp() - 1) / l.dp();
  r.memory.window_bytes *= seqs, r.memory.entry_bytes *= seqs, r.memory.index_bytes *= seqs;
  r.memory_total = r.memory.total();
  r.fits = q.node_memory_bytes <= 0 || double(r.memory_total) <= q.node_memory_bytes / l.ranks_per_node;
  r.p = predict(cfg, l, q.work, prof, q.net);
  return r;
}

double goal_cost(const PlanRow& r, const std::string& goal) {
  if (goal == "ttft") return r.p.ttft_seconds;
  if (goal == "throughput") return 1.0 / r.p.decode_tokens_per_second;
  return r.p.decode_ms_per_token;
}

std::vector<PlanRow> plan_search(const ModelConfig& cfg, const PlanQuery& q,
                                 const MachineProfile& prof) {
  std::vector<PlanRow> rows;
  for (const PlanLayout& l : plan_layouts(cfg, q)) rows.push_back(plan_row(cfg, q, l, prof));
  std::stable_sort(rows.begin(), rows.end(), [&](const PlanRow& a, const PlanRow& b) {
    if (a.fits != b.fits) return a.fits;
    return goal_cost(a, q.goal) < goal_cost(b, q.goal);
  });
  return rows;
}

}  // namespace modelone
