#include "comm/rma_window.h"

#include <vector>

namespace modelone::comm {

RmaWindow::RmaWindow(const Comm& comm, int64_t bytes) {
  // Rows are addressed in bytes (disp_unit 1): a shard may pass 2^31 bytes.
  const Waiting w(Call::WinAllocate);
  check(MPI_Win_allocate(MPI_Aint(bytes), 1, MPI_INFO_NULL, comm.raw(), &base_, &win_),
        "MPI_Win_allocate");
  // No rank ever takes an exclusive lock, so MPI_MODE_NOCHECK is valid.
  check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "MPI_Win_lock_all");
}

RmaWindow::~RmaWindow() {
  if (win_ == MPI_WIN_NULL) return;
  MPI_Win_unlock_all(win_);
  MPI_Win_free(&win_);
}

void RmaWindow::get_rows(int target, const int64_t* offs, int64_t n, int64_t row_bytes, void* dst) {
  if (n == 0) return;
  std::vector<MPI_Aint> displs(offs, offs + n);
  MPI_Datatype rows_t;
  check(MPI_Type_create_hindexed_block(int(n), int(row_bytes), displs.data(), MPI_BYTE, &rows_t),
        "MPI_Type_create_hindexed_block");
  check(MPI_Type_commit(&rows_t), "MPI_Type_commit");
  MPI_Datatype row_t;  // the origin side: n contiguous rows, counted in rows
  check(MPI_Type_contiguous(int(row_bytes), MPI_BYTE, &row_t), "MPI_Type_contiguous");
  check(MPI_Type_commit(&row_t), "MPI_Type_commit");
  check(MPI_Get(dst, int(n), row_t, target, 0, 1, rows_t, win_), "MPI_Get");
  // Freeing a datatype leaves operations already started with it intact (MPI 4.0, 5.1.9).
  MPI_Type_free(&rows_t);
  MPI_Type_free(&row_t);
}

void RmaWindow::flush() {
  const Waiting w(Call::WinFlush);
  check(MPI_Win_flush_all(win_), "MPI_Win_flush_all");
}

}  // namespace modelone::comm
