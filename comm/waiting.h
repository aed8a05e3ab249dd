// What the main thread waits in: every blocking MPI call of comm/ marks itself here, so the
// watchdog can tell ranks that wait on each other in calls that do not match (one rank failed
// or took another path alone and waits in a collective the others never join) from ranks that
// are only slow. Only the main thread calls MPI collectives; the watchdog thread reads the mark.
#pragma once
#include <cstdint>

namespace modelone::comm {

// The blocking calls, by name (the watchdog sends the index between ranks).
enum class Call : int {
  Allreduce, Bcast, Barrier, Alltoall, Alltoallv, Allgather, Allgatherv, Gather, Gatherv,
  CommSplit, Wait, WinAllocate, WinFlush, Count
};
const char* call_name(int call);

// Marks the main thread as waiting in `call` for its lifetime (not nested: one call at a time).
class Waiting {
 public:
  explicit Waiting(Call call);
  ~Waiting();
  Waiting(const Waiting&) = delete;
  Waiting& operator=(const Waiting&) = delete;
};

// The call the main thread waits in now: seq numbers the blocking calls made so far (the same
// seq later means the same call, still not returned); seq -1 when it waits in none.
struct WaitMark {
  int64_t seq = -1;
  int call = -1;
  double seconds = 0;  // since it began
};
WaitMark waiting_now();

}  // namespace modelone::comm
