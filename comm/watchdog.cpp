#include "comm/watchdog.h"

#include "comm/clock.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "comm/waiting.h"

namespace modelone::comm {

namespace {
constexpr int kTag = 7001;
// Every message on the ring: [kind] for beats and goodbyes, [kToken, (seq, call) per rank] for
// the token. One tag, so a rank takes its previous rank's messages in the order they were sent.
constexpr int64_t kBeat = 0, kBye = 1, kToken = 2;

double since(double t) { return now() - t; }

// "rank 0 in MPI_Barrier; ranks 1, 2 in MPI_Alltoallv" from a completed token.
std::string who_waits_where(const std::vector<int64_t>& token, int size) {
  std::string out;
  std::vector<bool> done(size_t(size), false);
  for (int r = 0; r < size; ++r) {
    if (done[size_t(r)]) continue;
    const int64_t call = token[size_t(2 + 2 * r)];
    std::vector<int> same;
    for (int q = r; q < size; ++q)
      if (!done[size_t(q)] && token[size_t(2 + 2 * q)] == call) {
        same.push_back(q);
        done[size_t(q)] = true;
      }
    out += std::string(out.empty() ? "" : "; ") + (same.size() > 1 ? "ranks " : "rank ");
    for (size_t i = 0; i < same.size(); ++i) out += (i ? ", " : "") + std::to_string(same[i]);
    out += std::string(" in ") + call_name(int(call));
  }
  return out;
}
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
  next_ = (rank_ + 1) % size_;
  prev_ = (rank_ + size_ - 1) % size_;
  check(MPI_Comm_dup(world.raw(), &comm_), "MPI_Comm_dup (watchdog)");
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  MPI_Comm_free(&comm_);
}

void Watchdog::send(std::vector<int64_t> msg) {
  send_bufs_.push_back(std::move(msg));  // moving keeps the data where MPI reads it
  sends_.emplace_back();
  MPI_Isend(send_bufs_.back().data(), int(send_bufs_.back().size()), MPI_INT64_T, next_, kTag,
            comm_, &sends_.back());
}

// Completed sends free their requests and buffers; the rest stay in flight.
void Watchdog::reap_sends() {
  for (size_t i = 0; i < sends_.size();) {
    int done = 0;
    MPI_Test(&sends_[i], &done, MPI_STATUS_IGNORE);
    if (!done) {
      ++i;
      continue;
    }
    sends_[i] = sends_.back();
    sends_.pop_back();
    send_bufs_[i] = std::move(send_bufs_.back());
    send_bufs_.pop_back();
  }
}

// This rank's entry: the call its main thread has waited in for longer than the timeout, or -1.
void Watchdog::stamp(std::vector<int64_t>* token) const {
  const WaitMark m = waiting_now();
  const bool long_wait = m.seq >= 0 && m.seconds > timeout_s_;
  (*token)[size_t(1 + 2 * rank_)] = long_wait ? m.seq : -1;
  (*token)[size_t(2 + 2 * rank_)] = long_wait ? m.call : -1;
}

void Watchdog::on_token(std::vector<int64_t> token) {
  if (rank_ != 0) {  // add this rank's entry and pass it on (dropped once this rank said goodbye)
    stamp(&token);
    if (!said_bye_) send(std::move(token));
    return;
  }
  token_out_ = false;  // a round is complete
  bool all_long = true;
  for (int r = 0; r < size_; ++r) all_long &= token[size_t(1 + 2 * r)] >= 0;
  if (!all_long) {
    last_round_.clear();
    return;
  }
  if (token != last_round_) {  // wait for a second round to see nobody moved in between
    last_round_ = std::move(token);
    return;
  }
  std::fprintf(stderr, "modelone: error: every rank has waited for more than %g s in calls the "
               "others do not join (%s): a rank failed or took another path alone; stopping the "
               "job (--watchdog %g)\n", timeout_s_, who_waits_where(token, size_).c_str(), timeout_s_);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 2);
}

void Watchdog::loop() {
  // Beats four times per timeout (at most every second), so a live rank is never late.
  const double period = std::min(1.0, timeout_s_ / 4);
  std::vector<int64_t> in(size_t(1 + 2 * size_));
  MPI_Request recv;
  MPI_Irecv(in.data(), int(in.size()), MPI_INT64_T, prev_, kTag, comm_, &recv);
  double heard = now(), beat = now() - 3600;
  double token_at = now();
  bool prev_gone = false;
  while (!(said_bye_ && prev_gone)) {
    if (!said_bye_ && since(beat) >= period) {
      send({kBeat});
      beat = now();
    }
    if (rank_ == 0 && !said_bye_ && !token_out_ && since(token_at) >= period) {
      std::vector<int64_t> token(in.size(), -1);
      token[0] = kToken;
      stamp(&token);
      send(std::move(token));
      token_out_ = true;
      token_at = now();
    }
    if (stop_ && !said_bye_) {
      send({kBye});
      said_bye_ = true;
    }
    reap_sends();
    int got = 0;
    if (!prev_gone) MPI_Test(&recv, &got, MPI_STATUS_IGNORE);
    if (got) {
      heard = now();
      if (in[0] == kBye) {
        prev_gone = true;
      } else {
        if (in[0] == kToken) on_token(in);
        MPI_Irecv(in.data(), int(in.size()), MPI_INT64_T, prev_, kTag, comm_, &recv);
      }
    }
    if (!prev_gone && since(heard) > timeout_s_) {
      std::fprintf(stderr, "modelone: error: rank %d: rank %d has not answered for %.0f s (stopped, "
                   "e.g. by SIGSTOP, or its node is unreachable); stopping the job (--watchdog %g)\n",
                   rank_, prev_, since(heard), timeout_s_);
      std::fflush(stderr);
      // Not MPI_Abort: with a stopped rank in the job, Open MPI 4.1.4's abort path (the help
      // text it sends to mpirun) left mpirun hung in about 1 run in 5 under ASan
      // (ORTE_ERROR_LOG in orte/util/show_help.c). A non-zero exit makes mpirun end the job.
      std::_Exit(2);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The next rank takes every message up to its goodbye, so the sends all complete.
  MPI_Waitall(int(sends_.size()), sends_.data(), MPI_STATUSES_IGNORE);
}

}  // namespace modelone::comm
