// What a layout will do, predicted from a machine profile (machine_profile.h) and the config:
// the engine's steps rebuilt as the operations they run (the weight products, the attention and
// indexer cores, the routed experts, the collectives of each part), each costed from the
// profile's measurements, per step and per part, then prefill and decode figures.
//
// The model follows the engine (docs/architecture.md): world W = dp x cp; a sequence's prompt is
// split over its cp group, prefill_chunk rows per rank per step; decode rows of a sequence sit on
// its cp group's tail rank, which projects them, while every rank of the group scores and
// attends its share of the compressed entries; the MoE exchanges rows over ep ranks twice per
// layer (dispatch, combine, fp32 rows); Engram rows are read remotely from the ranks holding the
// tables. Ranks that share a node share its cores (more ranks x threads than cores stretches
// compute by the ratio) and its link (the network model).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dist/plan/machine_profile.h"
#include "model/config/config.h"

namespace modelone {

struct PlanLayout {
  int nodes = 1, ranks_per_node = 1, threads = 1;
  int cp = 1, ep = 1;
  int engram_ranks = 0;  // ranks holding the Engram tables; 0: max(cp, ep)
  int world() const { return nodes * ranks_per_node; }
  int dp() const { return world() / cp; }
  std::string describe() const;  // "2 nodes x 4 ranks x 2 threads, cp 4, ep 8, dp 2"
};

// A link between nodes: bandwidth of one node's link and the latency of one message.
struct NetworkModel {
  double gbit = 100, latency_s = 2e-6;
  std::string describe() const;
};
// "100g", "25g,5us", "400gbit,1.5us": Gb/s, then an optional latency in us (default 2 us).
NetworkModel parse_network(const std::string& s);

struct PlanWork {
  int64_t context = 4096;        // prompt tokens (prefill) and positions held (decode)
  int64_t batch = 1;             // sequences at once
  int64_t prefill_chunk = 2048;  // prompt tokens per rank per step
  std::string compute = "bf16";  // the products' path
  std::string dense_dtype = "bf16", expert_dtype = "bf16";  // weights as stored
  int cores_per_node = 0;        // 0: no stretching for shared cores
};

// One part of a step on the critical rank: its own compute, its collectives, and the time it
// waits for slower ranks (imbalance).
struct PartTime {
  double compute = 0, exchange = 0, wait = 0;
  double total() const { return compute + exchange + wait; }
  PartTime& operator+=(const PartTime& o) {
    compute += o.compute, exchange += o.exchange, wait += o.wait;
    return *this;
  }
  PartTime scaled(double f) const { return {compute * f, exchange * f, wait * f}; }
};
// The parts, in print order.
extern const std::vector<std::string> kPlanParts;  // attention, indexer, moe_experts, ...
struct StepCost {
  std::map<std::string, PartTime> parts;
  double total() const;
  StepCost& operator+=(const StepCost& o);
  StepCost scaled(double f) const;
};

struct PlanPrediction {
  StepCost prefill;   // the whole prefill of the batch (all steps)
  StepCost decode;    // one decode step of the batch at `context`
  int64_t prefill_steps = 0;
  double prefill_seconds = 0, prefill_tokens_per_second = 0, ttft_seconds = 0;
  double decode_ms_per_token = 0, decode_tokens_per_second = 0;
  bool extrapolated_threads = false;  // more threads than the profile calibrated
};

// The floats of a row's element-wise work in one layer: hc x hidden + heads x head_dim.
int64_t layer_width(const ModelConfig& c);

// The routed rows the busiest of ep ranks receives, expected, when `rows` rows each pick top_k
// distinct of `experts` experts uniformly and each rank holds experts / ep of them.
double busiest_rank_rows(double rows, double experts, double top_k, int ep);

// Checks the layout against the config (cp and ep divide, ranks fit) with one-line errors.
void check_plan_layout(const ModelConfig& cfg, const PlanLayout& l);
PlanPrediction predict(const ModelConfig& cfg, const PlanLayout& l, const PlanWork& w,
                       const MachineProfile& prof, const NetworkModel& net);

}  // namespace modelone
