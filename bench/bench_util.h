// Shared benchmark plumbing: medians of repeated timings, and one fixed-format line per case
// (or one JSON object per line with --json). Every benchmark times its baseline in the same run
// and prints the ratio.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace modelone::comm { class Comm; }

namespace modelone::bench {

inline double wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of fn(): at least min_reps runs and about min_seconds in all (one warm-up first).
double median_seconds(const std::function<void()>& fn, int min_reps = 5, double min_seconds = 0.3);
// Collective: median over iters of the slowest rank's seconds for fn, all ranks starting
// together (one warm-up run first).
double median_max(const comm::Comm& c, int iters, const std::function<void()>& fn);

// The machine's read bandwidth in GB/s: threads summing a 1 GiB buffer (best of a few passes).
double read_bandwidth_gbps(int threads);

// One result line: "tag key=value key=value ..." or, with json, {"bench": tag, key: value, ...}.
class Line {
 public:
  explicit Line(std::string tag) : tag_(std::move(tag)) {}
  Line& add(const std::string& k, double v, int precision = 4);
  Line& add(const std::string& k, int64_t v);
  Line& add(const std::string& k, const std::string& v);
  void print(bool json) const;

 private:
  std::string tag_;
  std::vector<std::pair<std::string, std::string>> text_, json_;
};

}  // namespace modelone::bench
