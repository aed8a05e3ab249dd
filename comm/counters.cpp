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
  std::vector<double> v(3 * n);  // calls, bytes, seconds per op
  size_t i = 0;
  for (auto& op : names) {
    auto it = ops_.find(op);
    const OpStats s = it == ops_.end() ? OpStats{} : it->second;
    v[3 * i] = double(s.calls);
    v[3 * i + 1] = double(s.bytes);
    v[3 * i + 2] = s.seconds;
    ++i;
  }
  const std::vector<Spread> r = spread(comm, v);
  std::vector<OpSummary> out;
  i = 0;
  for (auto& op : names) {
    OpSummary s;
    s.op = op;
    s.calls_max = int64_t(r[3 * i].max);
    s.bytes_min = int64_t(r[3 * i + 1].min);
    s.bytes_max = int64_t(r[3 * i + 1].max);
    s.bytes_sum = int64_t(r[3 * i + 1].sum);
    s.seconds_min = r[3 * i + 2].min;
    s.seconds_max = r[3 * i + 2].max;
    s.seconds_sum = r[3 * i + 2].sum;
    out.push_back(s);
    ++i;
  }
  return out;
}

}  // namespace modelone::comm
