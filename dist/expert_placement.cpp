#include "dist/expert_placement.h"

#include <algorithm>

namespace modelone {

ExpertPlacement ExpertPlacement::contiguous(int64_t n_experts, int ep) {
  ExpertPlacement p;
  p.ep = ep;
  p.replicas.resize(size_t(n_experts));
  const int64_t base = n_experts / ep, extra = n_experts % ep;
  int64_t e = 0;
  for (int r = 0; r < ep; ++r) {
    const int64_t n = base + (r < extra ? 1 : 0);
    for (int64_t i = 0; i < n; ++i) p.replicas[size_t(e++)] = {r};
  }
  return p;
}

std::vector<ExpertPlacement> ExpertPlacement::uniform(int64_t n_experts, int ep, int64_t n_layers) {
  return std::vector<ExpertPlacement>(size_t(n_layers), contiguous(n_experts, ep));
}

bool ExpertPlacement::holds(int rank, int64_t e) const {
  const auto& r = replicas[size_t(e)];
  return std::find(r.begin(), r.end(), rank) != r.end();
}

}  // namespace modelone
