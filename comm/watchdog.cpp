#include "comm/watchdog.h"

#include <chrono>
#include <cstdio>
#include <vector>

namespace modelone::comm {

namespace {
constexpr int kTag = 7001;
constexpr int kBeat = 0, kBye = 1;
const int kMessages[2] = {kBeat, kBye};  // send buffers that outlive every request
}  // namespace

bool thread_multiple() {
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  return level == MPI_THREAD_MULTIPLE;
}

Watchdog::Watchdog(const Comm& world, double timeout_s) : timeout_s_(timeout_s) {
  rank_ = world.rank();
  size_ = world.size();
  if (size_ == 1) return;  // nobody to wait for
  check(MPI_Comm_dup(world.raw(), &comm_), "MPI_Comm_dup (watchdog)");
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  MPI_Comm_free(&comm_);
}

void Watchdog::loop() {
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  // Beats four times per timeout (at most every second), so a live rank is never late.
  const double period = std::min(1.0, timeout_s_ / 4);
  int in = -1;
  MPI_Request recv;
  MPI_Irecv(&in, 1, MPI_INT, prev, kTag, comm_, &recv);
  std::vector<MPI_Request> sends;
  auto send = [&](const int* what) {
    sends.emplace_back();
    MPI_Isend(what, 1, MPI_INT, next, kTag, comm_, &sends.back());
  };
  clock::time_point heard = clock::now(), beat = clock::now() - std::chrono::hours(1);
  bool said_bye = false, prev_gone = false;
  while (!(said_bye && prev_gone)) {
    if (!said_bye && since(beat) >= period) {
      send(&kMessages[kBeat]);
      beat = clock::now();
    }
    if (stop_ && !said_bye) {
      send(&kMessages[kBye]);
      said_bye = true;
    }
    // Completed heartbeats free their requests; the rest stay in flight.
    for (size_t i = 0; i < sends.size();) {
      int done = 0;
      MPI_Test(&sends[i], &done, MPI_STATUS_IGNORE);
      if (done) {
        sends[i] = sends.back();
        sends.pop_back();
      } else {
        ++i;
      }
    }
    int got = 0;
    if (!prev_gone) MPI_Test(&recv, &got, MPI_STATUS_IGNORE);
    if (got) {
      heard = clock::now();
      if (in == kBye) prev_gone = true;
      else MPI_Irecv(&in, 1, MPI_INT, prev, kTag, comm_, &recv);
    }
    if (!prev_gone && since(heard) > timeout_s_) {
      std::fprintf(stderr, "modelone: error: rank %d: rank %d has not answered for %.0f s (stopped, "
                   "e.g. by SIGSTOP, or its node is unreachable); stopping the job (--watchdog %g)\n",
                   rank_, prev, since(heard), timeout_s_);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The next rank takes every message up to its goodbye, so the sends all complete.
  MPI_Waitall(int(sends.size()), sends.data(), MPI_STATUSES_IGNORE);
}

}  // namespace modelone::comm
