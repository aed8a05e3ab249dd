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
  bool holds(int rank, int64_t e) const;
  // The replica a token from src_rank uses: spreads the sources over the copies.
  int owner(int64_t e, int src_rank) const {
    const auto& r = replicas[size_t(e)];
    return r[size_t(src_rank) % r.size()];
  }
  std::vector<int64_t> experts_of(int rank) const;
};

}  // namespace modelone
