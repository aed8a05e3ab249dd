#include "bench/bench_util.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <sys/mman.h>

#include <cstdlib>

#include "bench/bench_report.h"
#include "comm/comm.h"

namespace modelone::bench {

double read_bandwidth_gbps(int threads) {
  // The best of several passes over a 1 GiB buffer on huge pages where the kernel gives them:
  // the rate the machine can deliver (measured here it swung 32-50 GB/s with the page backing).
  // Integer sums vectorize without reassociation flags; the buffer is written first so every
  // page is real memory, not the shared zero page.
  const size_t bytes = size_t(1) << 30, n = bytes / 8;
  auto* buf = static_cast<uint64_t*>(std::aligned_alloc(size_t(2) << 20, bytes));
  if (!buf) return 0.0;
  madvise(buf, bytes, MADV_HUGEPAGE);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  uint64_t sink = 0;
  double best = 1e30;
  for (int pass = 0; pass < 6; ++pass) {
    const double t0 = comm::now();
    uint64_t total = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : total)
    for (size_t i = 0; i < n; ++i) total += buf[i];
    sink += total;
    if (pass > 0) best = std::min(best, comm::now() - t0);  // pass 0 warms up
  }
  std::free(buf);
  return sink == 1 ? 0.0 : double(bytes) / best / 1e9;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

double median_seconds(const std::function<void()>& fn, int min_reps, double min_seconds) {
  fn();  // warm-up: page in weights, grow buffers
  std::vector<double> t;
  const double start = comm::now();
  while (int(t.size()) < min_reps || comm::now() - start < min_seconds) {
    const double t0 = comm::now();
    fn();
    t.push_back(comm::now() - t0);
    if (t.size() >= 1000) break;
  }
  return median(t);
}

Line& Line::add(const std::string& k, double v, int precision) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", precision, v);
  fields_.push_back({k, Kind::Measure, b, nlohmann::json(v).dump(), v, precision});
  return *this;
}

Line& Line::add(const std::string& k, int64_t v) {
  fields_.push_back({k, Kind::Identity, std::to_string(v), std::to_string(v)});
  return *this;
}

Line& Line::add(const std::string& k, const std::string& v) {
  fields_.push_back({k, Kind::Identity, v, nlohmann::json(v).dump()});
  return *this;
}

Line& Line::note(const std::string& k, const std::string& v) {
  fields_.push_back({k, Kind::Note, v, nlohmann::json(v).dump()});
  return *this;
}

void Line::print() const { report_line(*this); }

}  // namespace modelone::bench

namespace modelone::bench {

double median_max(const comm::Comm& c, int iters, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    c.barrier();
    const double t0 = comm::now();
    fn();
    t.push_back(c.allreduce(comm::now() - t0, comm::Op::Max));
  }
  return median(t);
}

}  // namespace modelone::bench
