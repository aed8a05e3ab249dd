// n items over P parts as evenly as they go, the first n % P parts one longer: the one split of
// the project (output groups and rows over cp ranks, the head's vocabulary rows, Engram table
// rows over their owners, experts over ep ranks, a prefill step's pieces over the cp group).
#pragma once
#include <algorithm>
#include <cstdint>

namespace modelone {

struct EvenSplit {
  int64_t n = 0, base = 0, extra = 0;
  EvenSplit(int64_t items, int64_t parts) : n(items), base(items / parts), extra(items % parts) {}
  int64_t begin(int64_t i) const { return i * base + std::min(i, extra); }
  int64_t count(int64_t i) const { return base + (i < extra ? 1 : 0); }
  int64_t end(int64_t i) const { return begin(i) + count(i); }
  // The part holding item k.
  int64_t part_of(int64_t k) const {
    const int64_t cut = extra * (base + 1);
    return k < cut ? k / (base + 1) : extra + (k - cut) / base;
  }
};

}  // namespace modelone
