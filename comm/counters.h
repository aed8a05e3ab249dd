// Per-operation traffic counters (calls, bytes sent, wall seconds spent in the operation,
// waits included) kept per rank and reduced over a communicator to min / max / sum (spread(),
// rank_stats.h): one row per operation any rank performed.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "comm/rank_stats.h"

namespace modelone::comm {

struct OpStats {
  int64_t calls = 0, bytes = 0;
  double seconds = 0;
};

struct OpSummary {
  std::string op;
  int64_t calls_max = 0;
  int64_t bytes_min = 0, bytes_max = 0, bytes_sum = 0;
  double seconds_min = 0, seconds_max = 0, seconds_sum = 0;
};

class Counters {
 public:
  OpStats& operator[](const std::string& op) { return ops_[op]; }
  void clear() { ops_.clear(); }
  // Collective over comm: every operation any rank has, with min / max / sum over the ranks
  // (a rank that never ran it counts as zero).
  std::vector<OpSummary> reduce(const Comm& comm) const;

 private:
  std::map<std::string, OpStats> ops_;
};

// The stats of `op` in c, or a scratch record when there are no counters to keep.
inline OpStats& stats(Counters* c, const std::string& op) {
  static thread_local OpStats discard;
  return c ? (*c)[op] : discard;
}

// Adds the wall time from construction to destruction (and `bytes`) to one operation's stats.
class Timed {
 public:
  Timed(OpStats& s, int64_t bytes) : s_(s), t0_(now()) {
    ++s_.calls;
    s_.bytes += bytes;
  }
  ~Timed() { s_.seconds += now() - t0_; }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  OpStats& s_;
  double t0_;
};

}  // namespace modelone::comm
