// Expert load balancing (EPLB-style): per-layer expert loads recorded by `modelone run
// --expert-stats`, a planner that gives the hottest experts redundant copies and packs the
// copies onto ranks to even the load, and the placement files `--expert-placement` reads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/expert_placement.h"

namespace modelone {

struct ExpertStats {
  int ep = 1;
  std::vector<std::vector<int64_t>> tokens_per_expert;  // [layer][expert]
  std::vector<std::vector<int64_t>> tokens_per_rank;    // [layer][ep rank] (measured)
};

void write_expert_stats(const std::string& path, const ExpertStats& s, const std::string& model);
ExpertStats read_expert_stats(const std::string& path);

// For each layer: redundant extra copies go to the experts with the most tokens per copy, then
// copies are placed heaviest first on the least-loaded rank with a free slot (each rank holds at
// most ceil((E + redundant) / ep) experts and never two copies of one).
std::vector<ExpertPlacement> plan_placement(const std::vector<std::vector<int64_t>>& loads, int ep,
                                            int64_t redundant);

// Tokens each rank would process under a placement (an expert's tokens split evenly over its
// copies): [layer][rank].
std::vector<std::vector<double>> rank_loads(const std::vector<std::vector<int64_t>>& loads,
                                            const std::vector<ExpertPlacement>& placement);

void write_placement(const std::string& path, const std::vector<ExpertPlacement>& p);
// Checks every layer lists every expert at least once, on ranks in [0, ep); errors name the
// file, layer, expert or rank.
std::vector<ExpertPlacement> read_placement(const std::string& path, int64_t n_layers,
                                            int64_t n_experts, int ep);

}  // namespace modelone
