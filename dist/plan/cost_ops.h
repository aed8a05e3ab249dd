// The pieces cost_model.cpp adds up: one product, one attention or indexer scan, one collective
// over a group of ranks placed on nodes, each priced from the machine profile.
#pragma once
#include <string>

#include "dist/plan/cost_model.h"

namespace modelone {

class OpCosts {
 public:
  OpCosts(const MachineProfile& prof, const PlanLayout& l, const PlanWork& w, const NetworkModel& net);

  // rows x [K -> N] through a dense weight stored as dense_dtype (`dtype` overrides).
  double product(double rows, double K, double N, const std::string& dtype = "") const;
  // The routed experts of a rank: `experts` experts with rows_each rows (a mean), [D -> 2I],
  // [I -> D]; the busiest expert's rows decide the kernel, as in the engine (MoeParallel).
  double experts(double n_experts, double rows_each, double D, double I) const;
  // q queries over `keys` keys each with `heads` heads of head_dim (the attention core and the
  // merge of its partials).
  double attend(double q, double keys, double heads, double head_dim) const;
  // q queries scoring `keys` keys with nI heads of Di (and the top-k over them).
  double index(double q, double keys, double nI, double Di) const;
  // Whether the profile measured this link ("intra.shm": profiles before it did not).
  bool has_link(const std::string& name) const { return prof_.links.count(name) > 0; }
  // A collective of `kind` (alltoallv, allgather, p2p, rma_get; shm: the MoE's node-shared
  // exchange, out and back) in a group of n ranks that are consecutive world ranks (a cp group)
  // or spread over every node (an ep group), `bytes` sent (or read) per rank. Within a node:
  // the links timed beside polling waiters when the layout's ranks pass the cores, those timed
  // with the ranks within them (intra_cores) when they fit, else the profile's own (intra).
  double collective(const std::string& kind, double bytes, int n, bool spans_nodes) const;
  // The engine's fixed costs of one layer step with `rows` rows of a layer `width` wide.
  double fixed(double rows, double width) const;
  // The attention, indexer and MoE experts parts of a layer's step scaled by the anchors'
  // measured parts against their prices (EngineFixed's scales).
  void engine_scales(bool decode, StepCost* layer) const;
  // Time slicing: while `busy` ranks of the world compute at once (spread evenly over the nodes,
  // each with its threads), past a node's cores their compute stretches by the ratio; the node's
  // other ranks, waiting meanwhile, count as the profile's poll_share of a rank each.
  double shared(double busy) const;
  // These prices for a rank computing while `busy` ranks of the world compute at once (spread
  // evenly over the nodes): the node's busy cores (its busy ranks' threads, up to its cores; past
  // them shared() slices the time) slow one another as the profile's Together measured.
  OpCosts beside(double busy) const;

 private:
  const MachineProfile& prof_;
  const PlanLayout& l_;
  const PlanWork& w_;
  NetworkModel net_;
  int t_;                 // calibrated threads used
  double stretch_ = 1;    // compute slowdown of threads past the calibration
  double busy_cores_ = 0; // cores of the node computing beside this rank's work (beside()); 0: its own
  // The slowdown of work of `rows` rows from the node's other busy cores.
  double crowd(double rows) const;
};

}  // namespace modelone
