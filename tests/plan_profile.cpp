// made_up_profile: see plan_profile.h.
#include "tests/plan_profile.h"

namespace modelone::test {

namespace {
// Seconds per FLOP falling with rows, a streamed weight dearer than a cached one; scale: 1 / threads.
ProductCosts product(double scale) {
  ProductCosts p;
  p.classes = {{1 << 17, {{1, 64, 512}, {1e-10 * scale, 5e-12 * scale, 3e-12 * scale}}},
               {1 << 25, {{1, 64, 512}, {4e-10 * scale, 1e-11 * scale, 4e-12 * scale}}}};
  p.call_s = 1e-6;
  return p;
}
}  // namespace

MachineProfile made_up_profile(const std::string& build) {
  MachineProfile p;
  p.build = build;
  p.machine = {{"cpu", "made-up"}, {"cores", 4}};
  p.threads = {1, 2};
  p.compute = "bf16";
  for (int t : p.threads) {
    for (const char* d : {"bf16", "fp8", "fp4"}) {
      p.products[MachineProfile::key("bf16", d, t)] = product(1.0 / t);
      p.experts[MachineProfile::key("bf16", d, t)] = product(1.0 / t);
    }
    const CostCurve flat{{128, 8192}, {1e-8 / t, 1e-8 / t}}, idx{{1024, 65536}, {1e-11 / t, 2e-11 / t}};
    const CostCurve key{{128, 8192}, {1e-9 / t, 1e-9 / t}};
    p.attention[t] = {{flat, idx, key, key}, {flat, idx, key, key}};
    p.read_gbps[t] = 40.0 * t;
    p.fixed[t] = {1e-5, 0, 1e-6, 0};
    if (t == 1) p.fixed[t] = {0, 2e-12, 1e-6, 0, 2.5, 1};  // a width term past linear
  }
  for (const char* k : {"alltoallv", "allgather", "p2p", "rma_get"})
    p.links[std::string("intra.") + k] = {{2, 4}, {5e-6, 2e-5}, {10, 8}, {}};
  p.links["intra.shm"] = {{2, 4}, {1e-6, 2e-6}, {20, 20}, {}};  // the MoE's node-shared round
  p.poll_share = 0;  // ranks waiting in MPI leave the cores to those computing
  return p;
}

}  // namespace modelone::test
