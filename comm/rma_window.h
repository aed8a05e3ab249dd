// A window of this rank's memory that other ranks read with one-sided MPI_Get (passive target):
// one MPI_Win_lock_all for the window's life, reads issued without the owner taking part, and a
// flush to complete them. Engram's sharded tables are read this way (dist/engram_store.h).
#pragma once
#include <cstdint>

#include "comm/comm.h"

namespace modelone::comm {

class RmaWindow {
 public:
  // Collective over comm: allocates and exposes `bytes` of this rank (may be 0). MPI allocates
  // the memory (MPI_Win_allocate): on one node Open MPI then maps it shared and a get is a copy.
  RmaWindow(const Comm& comm, int64_t bytes);
  uint8_t* data() const { return base_; }
  ~RmaWindow();  // unlock_all, then free (collective)
  RmaWindow(const RmaWindow&) = delete;
  RmaWindow& operator=(const RmaWindow&) = delete;

  // Starts reading n rows of row_bytes from target's window at byte offsets offs[0 .. n) into
  // dst[n, row_bytes], as one MPI_Get with an hindexed target datatype. Complete after flush().
  void get_rows(int target, const int64_t* offs, int64_t n, int64_t row_bytes, void* dst);
  void flush();  // completes every get issued so far (MPI_Win_flush_all)

 private:
  MPI_Win win_ = MPI_WIN_NULL;
  uint8_t* base_ = nullptr;
};

}  // namespace modelone::comm
