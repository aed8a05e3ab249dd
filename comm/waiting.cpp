#include "comm/waiting.h"

#include <atomic>

#include "comm/clock.h"

namespace modelone::comm {

namespace {
std::atomic<int64_t> g_seq{0};      // blocking calls begun
std::atomic<int64_t> g_in{-1};      // the seq of the call waited in now, -1: none
std::atomic<int> g_call{-1};
std::atomic<double> g_since{0};  // now() when it began
}  // namespace

const char* call_name(int call) {
  static const char* const kNames[] = {"MPI_Allreduce", "MPI_Bcast", "MPI_Barrier", "MPI_Alltoall",
                                       "MPI_Alltoallv", "MPI_Allgather", "MPI_Allgatherv",
                                       "MPI_Gather", "MPI_Gatherv", "MPI_Comm_split", "MPI_Wait",
                                       "MPI_Win_allocate", "MPI_Win_flush"};
  static_assert(sizeof kNames / sizeof kNames[0] == size_t(Call::Count));
  return call >= 0 && call < int(Call::Count) ? kNames[call] : "an unknown call";
}

Waiting::Waiting(Call call) {
  g_call = int(call);
  g_since = now();
  g_in = g_seq.fetch_add(1);
}

Waiting::~Waiting() { g_in = -1; }

WaitMark waiting_now() {
  WaitMark m;
  m.seq = g_in.load();
  if (m.seq < 0) return m;
  m.call = g_call.load();
  m.seconds = now() - g_since.load();
  return m;
}

}  // namespace modelone::comm
