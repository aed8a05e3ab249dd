// Shared benchmark plumbing: medians of repeated timings, and one line per case (Line), printed
// in the format the report chose (bench_report.h). Every benchmark times its baseline in the same
// run and prints the ratio.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "comm/clock.h"

namespace modelone::comm { class Comm; }

namespace modelone::bench {

// The median of v (the mean of the middle two for an even count; 0 when empty): every median the
// benchmarks print comes from here.
double median(std::vector<double> v);
// Median seconds of fn(): at least min_reps runs and about min_seconds in all (one warm-up first).
double median_seconds(const std::function<void()>& fn, int min_reps = 5, double min_seconds = 0.3);
// Collective: median over iters of the slowest rank's seconds for fn, all ranks starting
// together (one warm-up run first).
double median_max(const comm::Comm& c, int iters, const std::function<void()>& fn);

// The machine's read bandwidth in GB/s: threads summing a 1 GiB buffer (best of a few passes).
double read_bandwidth_gbps(int threads);

// One result line: "tag key=value key=value ..." (or one JSON object with --json), printed by
// rank 0 only, through the report (bench_report.h), which may collect the lines of repeated runs
// and print them aggregated. The type a field is added with says what it is, so the report can
// match a line with its repetitions without knowing the benchmark:
//   add(k, int64_t), add(k, string)  identity: the case (shape, T, context, ranks, transport...);
//                                    the same case must give the same values in every run
//   add(k, double)                   a measurement: aggregated into median, mean and sd
//   note(k, string)                  text that changes run to run (per-rank timings): neither
//                                    identity nor aggregated, every run's value is kept
class Line {
 public:
  enum class Kind { Identity, Measure, Note };
  struct Field {
    std::string key;
    Kind kind;
    std::string text, json;  // the value as the text and JSON-lines formats print it
    double value = 0;        // Measure: the number itself
    int precision = 4;       // Measure: significant digits in text
  };

  explicit Line(std::string tag) : tag_(std::move(tag)) {}
  Line& add(const std::string& k, double v, int precision = 4);
  Line& add(const std::string& k, int64_t v);
  Line& add(const std::string& k, const std::string& v);
  Line& note(const std::string& k, const std::string& v);
  // On rank 0: printed now, or collected for the report (see bench_report.h); elsewhere dropped.
  void print() const;

  const std::string& tag() const { return tag_; }
  const std::vector<Field>& fields() const { return fields_; }

 private:
  std::string tag_;
  std::vector<Field> fields_;
};

}  // namespace modelone::bench
