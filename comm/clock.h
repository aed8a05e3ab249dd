// The runtime's one clock. now(): monotonic wall seconds (CLOCK_MONOTONIC, so never set back by
// NTP; safe on the watchdog's thread, which makes no MPI calls). process_cpu_seconds(): CPU
// seconds of all this process's threads: under oversubscription (more ranks than cores) wall
// time measures the scheduler, and CPU time around compute sections (never around MPI waits,
// which busy-poll) measures the work. Only differences of either mean anything.
#pragma once
#include <ctime>

namespace modelone::comm {

inline double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

inline double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Whether timed() reads the process's CPU time too. The server turns it off: the kernel sums
// that time over every thread of the process, and its hundreds of HTTP threads made the reads a
// tenth of a busy server's CPU (perf: thread_group_cputime), for a breakdown it never reports.
inline bool& cpu_timing() {
  static bool on = true;
  return on;
}

// Runs f, adding its wall time to `wall` and its CPU time to `cpu` (when cpu_timing()).
template <class F>
void timed(double& wall, double& cpu, F&& f) {
  const bool with_cpu = cpu_timing();
  const double w0 = now(), c0 = with_cpu ? process_cpu_seconds() : 0;
  f();
  wall += now() - w0;
  if (with_cpu) cpu += process_cpu_seconds() - c0;
}

}  // namespace modelone::comm
