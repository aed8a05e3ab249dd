// `modelone plan`'s layouts: the memory each needs (model_info's rank_memory, times the
// sequences a rank holds), its predicted figures, and the search over cp, ep (and ranks per
// node with threads, when not given) for the layouts that fit, ranked by a goal.
#pragma once
#include <string>
#include <vector>

#include "dist/plan/cost_model.h"
#include "model/config/model_info.h"

namespace modelone {

struct PlanQuery {
  PlanLayout layout;            // cp / ep 0: searched; ranks_per_node / threads 0: searched
  PlanWork work;
  NetworkModel net;
  WeightBytes weights;          // as stored (inspect's)
  DType kv_dtype = DType::BF16;
  double node_memory_bytes = 0; // per node; a rank gets its share
  std::string goal = "decode";  // ttft, decode or throughput
};

struct PlanRow {
  PlanLayout layout;
  RankMemory memory;            // the busiest rank, caches of every sequence it holds
  int64_t memory_total = 0;
  bool fits = false;
  PlanPrediction p;
};

// The layouts to price: the given one, or every cp / ep (and ranks per node x threads filling
// cores_per_node) the world allows. Throws on a layout that cannot be laid out.
std::vector<PlanLayout> plan_layouts(const ModelConfig& cfg, const PlanQuery& q);
PlanRow plan_row(const ModelConfig& cfg, const PlanQuery& q, const PlanLayout& l,
                 const MachineProfile& prof);
// Every layout priced, those that fit first, then by the goal (best first).
std::vector<PlanRow> plan_search(const ModelConfig& cfg, const PlanQuery& q,
                                 const MachineProfile& prof);
// The goal's figure of a row, smaller is better (throughput: its inverse).
double goal_cost(const PlanRow& r, const std::string& goal);

}  // namespace modelone
