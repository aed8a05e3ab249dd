#include "comm/shared_window.h"

#include <exception>

namespace modelone::comm {

SharedWindow::SharedWindow(const Comm& comm, size_t bytes_per_rank)
    : comm_(comm.raw()), bytes_(bytes_per_rank) {
  void* base = nullptr;
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "alloc_shared_noncontig", "true");  // each segment on its owner's NUMA node
  int rc;
  {
    const Waiting w(Call::WinAllocate);
    rc = MPI_Win_allocate_shared(MPI_Aint(bytes_per_rank), 1, info, comm_, &base, &win_);
  }
  MPI_Info_free(&info);
  check(rc, "MPI_Win_allocate_shared");
  bases_.resize(size_t(comm.size()));
  for (int r = 0; r < comm.size(); ++r) {
    MPI_Aint size;
    int disp;
    void* p;
    check(MPI_Win_shared_query(win_, r, &size, &disp, &p), "MPI_Win_shared_query");
    bases_[size_t(r)] = static_cast<uint8_t*>(p);
  }
  check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "MPI_Win_lock_all");
}

SharedWindow::~SharedWindow() { release(); }

SharedWindow::SharedWindow(SharedWindow&& o) noexcept { *this = std::move(o); }

SharedWindow& SharedWindow::operator=(SharedWindow&& o) noexcept {
  if (this != &o) {
    release();
    win_ = o.win_;
    comm_ = o.comm_;
    bytes_ = o.bytes_;
    bases_ = std::move(o.bases_);
    o.win_ = MPI_WIN_NULL;
  }
  return *this;
}

void SharedWindow::release() {
  if (win_ == MPI_WIN_NULL) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  // MPI_Win_free is collective: while an exception unwinds this rank, the others may never get
  // there, so leave the window to MPI_Abort / MPI_Finalize instead of hanging in it.
  if (!finalized && std::uncaught_exceptions() == 0) {
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
  }
  win_ = MPI_WIN_NULL;
}

void SharedWindow::fence() const {
  check(MPI_Win_sync(win_), "MPI_Win_sync");
  check(MPI_Barrier(comm_), "MPI_Barrier");
  check(MPI_Win_sync(win_), "MPI_Win_sync");
}

bool on_one_node(const Comm& comm) {
  Comm node = comm.split_shared();
  return comm.allreduce(node.size() == comm.size() ? 1 : 0, Op::Min) == 1;
}

}  // namespace modelone::comm
