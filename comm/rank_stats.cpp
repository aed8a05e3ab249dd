#include "comm/rank_stats.h"

#include <stdexcept>

namespace modelone::comm {

std::vector<Spread> spread(const Comm& c, const std::vector<double>& mine) {
  // Three reductions of all the values at once, whatever their number.
  std::vector<double> lo = mine, hi = mine, sum = mine;
  const int64_t n = int64_t(mine.size());
  c.allreduce(lo.data(), n, Op::Min);
  c.allreduce(hi.data(), n, Op::Max);
  c.allreduce(sum.data(), n, Op::Sum);
  std::vector<Spread> out(mine.size());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = {lo[i], sum[i] / double(c.size()), hi[i], sum[i]};
  return out;
}

const Spread& Reduced::operator[](const std::string& field) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == field) return values_[i];
  throw std::logic_error("internal: no field '" + field + "' was reduced");
}

}  // namespace modelone::comm
