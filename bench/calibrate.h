// `modelone bench calibrate`: this machine's per-operation costs, measured with the engine's own
// kernels and collectives, written as a machine profile for `modelone plan`
// (dist/plan/machine_profile.h). The pieces, one file each:
//   calibrate_kernels.cpp  products, routed experts, attention and indexer cores (rank 0 alone)
//   calibrate_comm.cpp     collectives fitted as latency + per-peer + bytes / bandwidth
//   calibrate_passes.cpp   whole passes of the kernels reduced to their per-point medians
//   calibrate_bench.cpp    the order of the work, the engine's fixed costs, the profile written
#pragma once
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_options.h"
#include "dist/plan/machine_profile.h"

namespace modelone::comm { class Comm; }

namespace modelone::bench {

ProductCosts calibrate_products(const std::string& dtype, const CalibrateBenchOptions& o);
ProductCosts calibrate_experts(const std::string& dtype, const CalibrateBenchOptions& o);
AttnCosts calibrate_attention(const CalibrateBenchOptions& o);
// The two anchor models' medians of a prefill and of a decode step (seconds), as the engine's
// fixed costs are fitted on them (calibrate_bench.cpp).
using AnchorTimes = std::array<std::pair<double, double>, 2>;
// Each point of the kernels' curves (products, experts, attention, read bandwidth) as the median
// over passes that timed the same points, into out; and the anchors' times likewise.
void keep_medians(const std::vector<MachineProfile>& passes, MachineProfile* out);
AnchorTimes median_anchors(const std::vector<AnchorTimes>& passes);
// MachineProfile::poll_share, measured on the node's ranks (1 when they do not outnumber the cores).
double calibrate_poll_share(const comm::Comm& node, int cores);
// Collectives fitted per group size into links["PREFIX.KIND"]; on a node whose ranks outnumber
// `cores`, groups smaller than the node also beside polling waiters: "PREFIX_polled.KIND".
void calibrate_links(const comm::Comm& c, const std::string& prefix, int cores,
                     const CalibrateBenchOptions& o, std::map<std::string, LinkFit>* links);

}  // namespace modelone::bench
