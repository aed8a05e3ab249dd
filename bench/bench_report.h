// How `modelone bench` reports, in the manner of llama-bench: --repetitions N runs the whole
// benchmark N times and prints each case once with the median, mean and sd of every measurement
// over the N runs; --output picks text (the default, the format of one run unchanged), md, csv,
// json (one document) or jsonl (--json: one object per line). Every format carries the machine
// the numbers came from (CPU, cores, ranks x threads, MPI, BLAS, oneDNN, compute path, date).
//
// Lines go straight to stdout when there is nothing to aggregate (one run, text or jsonl), so a
// long benchmark shows its cases as they finish; otherwise they are collected per run and the
// cases matched by identity (the tag, the identity fields in order, and how many lines with the
// same identity came before in that run; see Line in bench_util.h) and printed at the end.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelone::bench {

class Line;

struct ReportOptions {
  int repetitions = 1;
  std::string output = "text";  // text, md, csv, json, jsonl
  bool json = false;            // --json: the same as --output jsonl
};

// The machine the results come from: rank 0's CPU and libraries, and the world's size.
struct Machine {
  std::string cpu;       // /proc/cpuinfo model name (cpuid family F model M)
  int cores = 0;         // online CPUs on rank 0's node
  int ranks = 1;         // MPI world size
  int threads = 1;       // OpenMP threads per rank when the results were printed
  std::string host;      // rank 0's host name
  std::string mpi;       // "Open MPI v4.1.4" (mpi_detail: the library's whole version string)
  std::string mpi_detail;
  std::string blas;      // "OpenBLAS 0.3.21" (blas_config: openblas_get_config())
  std::string blas_config;
  std::string onednn;    // "oneDNN 2.6.3"
  std::string compute;   // the compute path `auto` takes here: bf16 or fp32
  std::string features;  // what model/base/cpu_features.h reports: "avx512 avx512_bf16" or "none"
  std::string date;      // local time, ISO 8601
  std::string malloc;    // the allocator's settings (dist/malloc_policy.h)

  std::string line() const;  // one line for the text and md headers
  nlohmann::ordered_json json() const;
};
Machine this_machine();

// Summary of one measurement over the runs: median (mean of the middle two for even n), mean
// and the sample standard deviation (0 for one run).
struct Stat {
  double median = 0, mean = 0, sd = 0;
  int n = 0;
};
Stat summarize(std::vector<double> v);

// Runs body r.repetitions times on every rank (each rank parses the same flags, so all run the
// same number of times and meet in the same collectives) and prints, on rank 0, what its Lines
// reported. Returns the first non-zero code of body, or 0.
int run_report(const ReportOptions& r, const std::function<int()>& body);

// Line::print's destination: stdout now, or the current run's collection.
void report_line(const Line& l);

}  // namespace modelone::bench
