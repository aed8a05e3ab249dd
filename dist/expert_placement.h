// Which ranks of an ep group hold which routed experts. Default: contiguous ranges, the first
// (E mod ep) ranks holding one more.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace modelone {

struct ExpertPlacement {
  int ep = 1;
  std::vector<std::vector<int>> replicas;  // [E]: ranks holding expert e (at least one)

  static ExpertPlacement contiguous(int64_t n_experts, int ep);
  // The contiguous split for every one of n_layers layers.
  static std::vector<ExpertPlacement> uniform(int64_t n_experts, int ep, int64_t n_layers);
  bool holds(int rank, int64_t e) const;
  // The replica token t of src_rank uses: spreads sources and tokens over the copies.
  int owner(int64_t e, int src_rank, int64_t t) const {
    const auto& r = replicas[size_t(e)];
    return r.size() == 1 ? r[0] : r[size_t(src_rank + t) % r.size()];
  }
};

}  // namespace modelone
