// An optional watchdog for ranks that stop answering (a process stopped with SIGSTOP, a node
// frozen or cut off): MPI waits for them forever, and the job hangs. A thread on each rank sends
// a heartbeat to the next rank of the world ring and listens for the previous one's. When the
// previous rank has been silent for the timeout, this rank prints one line naming it and aborts
// the job. A rank that is only slow (a long prefill) still beats: its watchdog thread runs.
// Needs MPI_THREAD_MULTIPLE (Runtime asks for it when the command line has --watchdog).
#pragma once
#include <atomic>
#include <thread>

#include "comm/comm.h"

namespace modelone::comm {

class Watchdog {
 public:
  // Collective over world (duplicates it). timeout_s > 0.
  Watchdog(const Comm& world, double timeout_s);
  // Collective: the last heartbeat says goodbye to the next rank, and the previous rank's
  // goodbye is awaited (under the same timeout), so no message is left in flight.
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void loop();
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_s_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Whether MPI was initialised with MPI_THREAD_MULTIPLE.
bool thread_multiple();

}  // namespace modelone::comm
