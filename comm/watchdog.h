// An optional watchdog for ranks that stop answering or wait forever.
// - A rank stopped (SIGSTOP), frozen or cut off: MPI waits for it forever. A thread on each rank
//   sends a heartbeat to the next rank of the world ring and listens for the previous one's; when
//   the previous rank has been silent for the timeout, this rank names it and aborts the job. A
//   rank that is only slow (a long prefill) still beats: its watchdog thread runs.
// - Ranks that wait on each other in calls that do not match (a rank failed or took another path
//   alone and waits in a collective the others never join): every rank still beats, so rank 0's
//   thread sends a token round the ring that collects what each main thread waits in
//   (comm/waiting.h). When every rank has waited in the same call for longer than the timeout in
//   two rounds running, nobody can move: rank 0 names the calls and aborts the job.
// Needs MPI_THREAD_MULTIPLE (Runtime asks for it when the command line has --watchdog).
#pragma once
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

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
  void send(std::vector<int64_t> msg);
  void reap_sends();
  void on_token(std::vector<int64_t> token);
  void stamp(std::vector<int64_t>* token) const;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, next_ = 0, prev_ = 0;
  double timeout_s_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Thread state: sends in flight with their buffers, and on rank 0 the token's rounds.
  std::vector<MPI_Request> sends_;
  std::vector<std::vector<int64_t>> send_bufs_;
  bool said_bye_ = false, token_out_ = false;
  std::vector<int64_t> last_round_;  // the previous round in which every rank waited long
};

// Whether MPI was initialised with MPI_THREAD_MULTIPLE.
bool thread_multiple();

}  // namespace modelone::comm
