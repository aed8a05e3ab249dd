// Memory every rank of a node can load and store: one MPI_Win_allocate_shared segment per rank,
// each rank seeing all segments. fence() makes stores before it visible to loads after it on
// every rank (MPI_Win_sync around a barrier, per MPI-3's unified memory model).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "comm/comm.h"

namespace modelone::comm {

class SharedWindow {
 public:
  SharedWindow() = default;
  // Collective over comm; every rank of comm must be on this node (see on_one_node()).
  SharedWindow(const Comm& comm, size_t bytes_per_rank);
  ~SharedWindow();
  SharedWindow(SharedWindow&& o) noexcept;
  SharedWindow& operator=(SharedWindow&& o) noexcept;
  SharedWindow(const SharedWindow&) = delete;
  SharedWindow& operator=(const SharedWindow&) = delete;

  bool valid() const { return win_ != MPI_WIN_NULL; }
  size_t bytes() const { return bytes_; }
  uint8_t* segment(int rank) const { return bases_[size_t(rank)]; }
  void fence() const;

 private:
  void release();
  MPI_Win win_ = MPI_WIN_NULL;
  MPI_Comm comm_ = MPI_COMM_NULL;
  size_t bytes_ = 0;
  std::vector<uint8_t*> bases_;
};

// Whether every rank of comm shares this node's memory (collective).
bool on_one_node(const Comm& comm);

}  // namespace modelone::comm
