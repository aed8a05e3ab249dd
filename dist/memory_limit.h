// How much memory one rank may use on this node, so a run that cannot fit is refused with the
// numbers before it allocates (not a bare std::bad_alloc, or the OOM killer, minutes later).
#pragma once
#include <cstdint>
#include <string>

namespace modelone {

struct MemoryLimit {
  int64_t bytes = 0;
  std::string source;  // what decided it, for the message: "MemAvailable 23.1 GiB over 2 ranks"
};

// The node's available memory (MemAvailable, and the cgroup's memory.max where one is set)
// shared by the ranks on this node, and at most this process's RLIMIT_AS. The one reader of the
// node's memory: run's check before loading and the Engram store's default budget use it.
MemoryLimit rank_memory_limit(int local_ranks);

}  // namespace modelone
