// `modelone bench calibrate`: this machine's per-operation costs, measured with the engine's own
// kernels and collectives, written as a machine profile for `modelone plan`
// (dist/plan/machine_profile.h). The pieces, one file each:
//   calibrate_kernels.cpp  products, routed experts, attention and indexer cores (rank 0 alone)
//   calibrate_comm.cpp     collectives fitted as latency + per-peer + bytes / bandwidth
//   calibrate_bench.cpp    the order of the work, the engine's fixed costs, the profile written
#pragma once
#include <map>
#include <string>

#include "bench/bench_options.h"
#include "dist/plan/machine_profile.h"

namespace modelone::comm { class Comm; }

namespace modelone::bench {

ProductCosts calibrate_products(const std::string& dtype, const CalibrateBenchOptions& o);
ProductCosts calibrate_experts(const std::string& dtype, const CalibrateBenchOptions& o);
AttnCosts calibrate_attention(const CalibrateBenchOptions& o);
// MachineProfile::poll_share, measured on the node's ranks (1 when they do not outnumber the cores).
double calibrate_poll_share(const comm::Comm& node, int cores);
// Collectives fitted per group size into links["PREFIX.KIND"]; on a node whose ranks outnumber
// `cores`, groups smaller than the node also beside polling waiters: "PREFIX_polled.KIND".
void calibrate_links(const comm::Comm& c, const std::string& prefix, int cores,
                     const CalibrateBenchOptions& o, std::map<std::string, LinkFit>* links);

}  // namespace modelone::bench
