// CPU seconds used by this process (all its threads) so far. Under oversubscription (more
// ranks than cores) wall time measures the scheduler; CPU time around compute sections (never
// around MPI waits, which busy-poll) measures the work.
#pragma once
#include <ctime>

namespace modelone {

inline double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

inline double wall_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Runs f, adding its wall time to `wall` and its CPU time to `cpu`.
template <class F>
void timed(double& wall, double& cpu, F&& f) {
  const double w0 = wall_seconds(), c0 = process_cpu_seconds();
  f();
  wall += wall_seconds() - w0;
  cpu += process_cpu_seconds() - c0;
}

}  // namespace modelone
