// The threads a kernel's own parallel region may use, and a loop of independent items over them.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>

namespace modelone {

// All of OpenMP's threads outside a parallel region, one inside one (a caller already split the
// work over the threads).
inline int threads_here() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// Work (multiply-adds, or weight elements read) a thread should get before a region splits:
// a fork and join costs about 3-4 us on the 2-core VMs this runs on, about what one thread does
// with 2^17 units; a small model's decode step has hundreds of regions below that, which ran
// 1.3-2x slower on two threads than on one.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 17;

// Elements a row-wise loop (norms, RoPE, merges: a few operations an element) needs before it
// splits over the threads.
constexpr int64_t kSplitRowWork = 32768;

// The threads worth waking for `work` units: threads_here() at most, one below the split size.
inline int threads_for(int64_t work) {
  const int here = threads_here();
  return here <= 1 ? 1 : int(std::clamp<int64_t>(work / kMinWorkPerThread, 1, here));
}

// The threads a product of T rows through an N x K weight is worth: its weight elements read
// plus its multiply-adds at 16 a read (a small model's products are too short to split).
inline int threads_for_product(int64_t T, int64_t N, int64_t K) {
  return threads_for(N * K * (1 + T / 16));
}

// Thread th's share [*b, *e) of n items split in nth contiguous blocks (OpenMP's static split).
inline void static_share(int64_t n, int th, int nth, int64_t* b, int64_t* e) {
  const int64_t q = n / nth, r = n % nth;
  *b = th * q + std::min<int64_t>(th, r);
  *e = *b + q + (th < r ? 1 : 0);
}

// body(thread, threads) on nt threads; called directly when nt is 1: a team of one still ends
// in libgomp's barrier, which makes a futex system call (hundreds per decode step, 13% of a small
// model's one-thread step on a VM).
template <class F>
void team(int nt, F&& body) {
  if (nt <= 1) {
    body(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  body(omp_get_thread_num(), omp_get_num_threads());
}

// fn(i) for i in [0, n) in static blocks over nt threads (in order here when nt is 1).
template <class F>
void parallel_for(int64_t n, int nt, F&& fn) {
  team(int(std::min<int64_t>(nt, std::max<int64_t>(n, 1))), [&](int th, int nth) {
    int64_t b, e;
    static_share(n, th, nth, &b, &e);
    for (int64_t i = b; i < e; ++i) fn(i);
  });
}

// fn(i) for i in [0, n), one item at a time to whichever of nt threads is free (in order here
// when nt is 1). Scratch inside fn is best thread_local.
template <class F>
void parallel_dynamic(int64_t n, int nt, F&& fn) {
  if (nt <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

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
