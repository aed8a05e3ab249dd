#include "dist/expert_placement.h"

#include <algorithm>

#include "model/base/even_split.h"

namespace modelone {

ExpertPlacement ExpertPlacement::contiguous(int64_t n_experts, int ep) {
  ExpertPlacement p;
  p.ep = ep;
  p.replicas.resize(size_t(n_experts));
  const EvenSplit split(n_experts, ep);
  for (int r = 0; r < ep; ++r)
    for (int64_t e = split.begin(r); e < split.end(r); ++e) p.replicas[size_t(e)] = {r};
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
