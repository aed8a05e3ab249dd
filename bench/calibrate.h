// `modelone bench calibrate`: this machine's per-operation costs, measured with the engine's own
// kernels and collectives, written as a machine profile for `modelone plan`
// (dist/plan/machine_profile.h). The pieces, one file each:
//   calibrate_kernels.cpp  products, routed experts, attention and indexer cores (rank 0 alone)
//   calibrate_comm.cpp     collectives fitted as latency + per-peer + bytes / bandwidth
//   calibrate_passes.cpp   whole passes of the kernels reduced to their per-point medians
//   calibrate_fixed.cpp    the engine's fixed costs fitted on two anchor models' steps
//   calibrate_bench.cpp    the order of the work, the anchors' steps timed, the profile written
#pragma once
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_options.h"
#include "dist/plan/cost_model.h"
#include "dist/plan/machine_profile.h"

namespace modelone::comm { class Comm; }

namespace modelone::bench {

ProductCosts calibrate_products(const std::string& dtype, const CalibrateBenchOptions& o);
ProductCosts calibrate_experts(const std::string& dtype, const CalibrateBenchOptions& o);
AttnCosts calibrate_attention(const CalibrateBenchOptions& o);
// GFLOPS of a 256-row bf16 product on each cpu of the node (each one's best of three turns), the
// calling thread pinned to each in turn (one thread; its affinity restored): a shared VM's cores
// drift apart for minutes at a time (one read 0.65 of the other's), and a step over every core
// waits on the slowest.
std::vector<double> core_gflops(const CalibrateBenchOptions& o);
// An anchor model's medians (seconds) of a prefill and of a decode step, and of each one's time
// outside the engine's part timers (attention, MoE, head, Engram), and of its attention and MoE
// timers' time.
struct AnchorStep {
  double prefill = 0, decode = 0, decode_untimed = 0, prefill_untimed = 0;
  double decode_attention = 0, decode_moe = 0, prefill_attention = 0, prefill_moe = 0;
};
// The narrow and the wide anchor, as the engine's fixed costs are fitted on them.
using AnchorTimes = std::array<AnchorStep, 2>;
// One anchor as the fit reads it: its layer width and layers, its steps measured and priced,
// and the rows of its prefill.
struct AnchorFit {
  double width = 0, layers = 1;
  AnchorStep measured;
  double priced_prefill = 0, priced_decode = 0;
  double rows = 0;  // set by the caller: the fit divides by rows - 1
};
struct FixedFitOut {  // each anchor's per-layer and per-row cost, for the printout
  std::array<double, 2> per_layer_s{}, per_row_s{};
};
// The engine's fixed costs from the narrow (0) and wide (1) anchor, priced with base's part
// scales (kept in what it returns).
EngineFixed fit_engine_fixed(const std::array<AnchorFit, 2>& anchors, FixedFitOut* out = nullptr,
                             EngineFixed base = {});
// EngineFixed's part scales from the wide anchor's measured step (m) and its priced decode step
// and prefill (the operations alone, no fixed costs): measured over priced, each held in [0.5, 2]
// (a scale past them would say more of the anchor than of the kernels).
void fit_part_scales(const AnchorStep& m, const StepCost& decode, const StepCost& prefill, EngineFixed* f);
// Each point of the kernels' curves (products, experts, attention, read bandwidth) as the median
// over passes that timed the same points, into out; and the anchors' times likewise.
void keep_medians(const std::vector<MachineProfile>& passes, MachineProfile* out);
AnchorTimes median_anchors(const std::vector<AnchorTimes>& passes);
// Passes (and anchors[threads]' steps, one a pass) with even[k] false set aside where some pass
// ran on even cores (MachineProfile::kEvenCorePace); all kept, with a warning, where none did.
void keep_even_passes(const std::vector<bool>& even, std::vector<MachineProfile>* done,
                      std::map<int, std::vector<AnchorTimes>>* anchors);
// MachineProfile::together: the node's ranks (up to `cores`) streaming products at once against
// one alone. Collective on the node.
Together calibrate_together(const comm::Comm& node, int cores, const CalibrateBenchOptions& o);
// `together` timed after each kernel pass, each point's median: the memory with every cpu
// streaming moved 30 <-> 53 GB/s within minutes on this VM, and a slowdown timed once read 1.79
// at one row in one calibration, 0.97 in the next. Passes that timed different points: an error.
Together median_together(const std::vector<Together>& passes);
// MachineProfile::poll_share, measured on the node's ranks (1 when they do not outnumber the cores).
double calibrate_poll_share(const comm::Comm& node, int cores);
// Collectives fitted per group size into links["PREFIX.KIND"]; on a node whose ranks outnumber
// `cores`, groups smaller than the node also beside polling waiters: "PREFIX_polled.KIND".
void calibrate_links(const comm::Comm& c, const std::string& prefix, int cores,
                     const CalibrateBenchOptions& o, std::map<std::string, LinkFit>* links);

}  // namespace modelone::bench
