#include "comm/counters.h"

#include <set>

namespace modelone::comm {

std::vector<OpSummary> Counters::reduce(const Comm& comm) const {
  // The union of the operation names, '\n'-separated, so every rank reduces the same rows.
  std::string mine;
  for (auto& [op, s] : ops_) mine += op + "\n";
  std::vector<char> all;
  comm.allgatherv(mine.data(), int64_t(mine.size()), &all);
  std::set<std::string> names;
  std::string cur;
  for (char c : all) {
    if (c == '\n') {
      names.insert(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  const size_t n = names.size();
  std::vector<double> v(3 * n), lo, hi, sum;  // calls, bytes, seconds per op
  size_t i = 0;
  for (auto& op : names) {
    auto it = ops_.find(op);
    const OpStats s = it == ops_.end() ? OpStats{} : it->second;
    v[3 * i] = double(s.calls);
    v[3 * i + 1] = double(s.bytes);
    v[3 * i + 2] = s.seconds;
    ++i;
  }
  lo = hi = sum = v;
  comm.allreduce(lo.data(), int64_t(lo.size()), Op::Min);
  comm.allreduce(hi.data(), int64_t(hi.size()), Op::Max);
  comm.allreduce(sum.data(), int64_t(sum.size()), Op::Sum);
  std::vector<OpSummary> out;
  i = 0;
  for (auto& op : names) {
    OpSummary s;
    s.op = op;
    s.calls_max = int64_t(hi[3 * i]);
    s.bytes_min = int64_t(lo[3 * i + 1]);
    s.bytes_max = int64_t(hi[3 * i + 1]);
    s.bytes_sum = int64_t(sum[3 * i + 1]);
    s.seconds_min = lo[3 * i + 2];
    s.seconds_max = hi[3 * i + 2];
    s.seconds_sum = sum[3 * i + 2];
    out.push_back(s);
    ++i;
  }
  return out;
}

}  // namespace modelone::comm
