// The threads a kernel's own parallel region may use, and a loop of independent items over them.
#pragma once

#include <omp.h>

#include <cstdint>
#include <exception>
#include <mutex>

namespace modelone {

// All of OpenMP's threads outside a parallel region, one inside one (a caller already split the
// work over the threads).
inline int threads_here() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// fn(i) for i in [0, n): side by side over the threads (one item at a time each) when there are
// several items and threads, else in order on this thread. Kernels inside then run on their
// calling thread (threads_here() is 1; oneDNN is not called inside our regions). The first
// exception an item throws is rethrown here once every item is done: one escaping the parallel
// region would end the process.
template <class F>
void parallel_each(int64_t n, F&& fn) {
  if (n <= 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::exception_ptr failed;
  std::mutex m;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!failed) failed = std::current_exception();
    }
  }
  if (failed) std::rethrow_exception(failed);
}

}  // namespace modelone
