// How MoE rows travel: MPI all-to-all between any ranks, or node-shared memory when the whole
// ep group is on one node (see moe_parallel.h).
#include <cstring>

#include "dist/moe_parallel.h"
#include "model/base/check.h"

namespace modelone {

// --- MPI -----------------------------------------------------------------------------------

void MoeParallel::start_dispatch_mpi(MoeBatch* b) {
  const int64_t rb = codec_.dispatch_bytes();
  const double c0 = comm::now();
  b->recv_rows = ep_.exchange_counts(b->send_rows);
  timers.exchange += comm::now() - c0;
  b->recv.resize(size_t(b->n_recv() * rb));
  exchange(b, b->send.data(), b->send_rows, b->recv.data(), b->recv_rows, rb);
}

void MoeParallel::exchange(MoeBatch* b, const void* send, const std::vector<int64_t>& send_rows,
                           void* recv, const std::vector<int64_t>& recv_rows, int64_t row_bytes) {
  // Without overlap nothing runs between start and finish: the blocking call is cheaper.
  if (opt_.overlap) {
    b->req = ep_.ialltoallv_rows(send, send_rows, recv, recv_rows, row_bytes);
    return;
  }
  const double c0 = comm::now();
  ep_.alltoallv_rows(send, send_rows, recv, recv_rows, row_bytes);
  timers.exchange += comm::now() - c0;
}

void MoeParallel::finish_dispatch_mpi(MoeBatch* b) {
  if (b->received) return;
  wait(b->req);
  b->received = true;
  const int64_t n = b->n_recv(), rb = codec_.dispatch_bytes(), cb = codec_.combine_bytes();
  b->out.resize(size_t(n * cb));
  b->in_rows.resize(size_t(n));
  b->out_rows.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    b->in_rows[size_t(i)] = b->recv.data() + i * rb;
    b->out_rows[size_t(i)] = b->out.data() + i * cb;
  }
}

void MoeParallel::start_combine_mpi(MoeBatch* b) {
  const int64_t cb = codec_.combine_bytes();
  b->back.resize(size_t(b->n_send() * cb));
  exchange(b, b->out.data(), b->recv_rows, b->back.data(), b->send_rows, cb);
}

void MoeParallel::finish_combine_mpi(MoeBatch* b, float* y) {
  wait(b->req);
  add_rows(*b, b->back.data(), y);
}

// --- Shared memory -------------------------------------------------------------------------
// Segment of rank s: [more][rows for rank 0..P) | dispatch rows, grouped by destination |
// combine rows, one per dispatch row, written by the destination rank.

void MoeParallel::dispatch_shm(int64_t layer, const Routing& r, const float* h, int64_t t0,
                               int64_t T, MoeBatch* b) {
  const int P = ep_.size(), me = ep_.rank();
  uint8_t* seg = window_.segment(me);
  layout(layer, r, h, t0, T, b, seg + shm_rows_off_);
  MO_CHECK(b->n_send() <= shm_rows_, "shared-memory round overflow");
  auto* hdr = reinterpret_cast<int64_t*>(seg);
  hdr[0] = t0 + T < r.T;  // this rank has tokens for another round
  std::memcpy(hdr + 1, b->send_rows.data(), size_t(P) * 8);
  const double c0 = comm::now();
  window_.fence();  // every rank's rows and header are visible
  timers.exchange += comm::now() - c0;
  // Rows for me from every source, read in place; results go to the source's segment.
  const int64_t rb = codec_.dispatch_bytes(), cb = codec_.combine_bytes();
  b->received = true;
  b->recv_rows.assign(size_t(P), 0);
  b->in_rows.clear();
  b->out_rows.clear();
  b->more = false;
  for (int s = 0; s < P; ++s) {
    uint8_t* src = window_.segment(s);
    const auto* sh = reinterpret_cast<const int64_t*>(src);
    b->more |= sh[0] != 0;
    int64_t off = 0;
    for (int d = 0; d < me; ++d) off += sh[1 + d];
    const int64_t cnt = sh[1 + me];
    b->recv_rows[size_t(s)] = cnt;
    for (int64_t i = 0; i < cnt; ++i) {
      b->in_rows.push_back(src + shm_rows_off_ + (off + i) * rb);
      b->out_rows.push_back(src + shm_results_off_ + (off + i) * cb);
    }
  }
}

void MoeParallel::combine_shm(MoeBatch* b, float* y) {
  const double c0 = comm::now();
  window_.fence();  // every result row is in its home segment
  timers.exchange += comm::now() - c0;
  add_rows(*b, window_.segment(ep_.rank()) + shm_results_off_, y);
}

}  // namespace modelone
