#include "bench/bench_util.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "comm/comm.h"

namespace modelone::bench {

double median_seconds(const std::function<void()>& fn, int min_reps, double min_seconds) {
  fn();  // warm-up: page in weights, grow buffers
  std::vector<double> t;
  const double start = wall();
  while (int(t.size()) < min_reps || wall() - start < min_seconds) {
    const double t0 = wall();
    fn();
    t.push_back(wall() - t0);
    if (t.size() >= 1000) break;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

Line& Line::add(const std::string& k, double v, int precision) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", precision, v);
  text_.push_back({k, b});
  json_.push_back({k, nlohmann::json(v).dump()});
  return *this;
}

Line& Line::add(const std::string& k, int64_t v) {
  text_.push_back({k, std::to_string(v)});
  json_.push_back({k, std::to_string(v)});
  return *this;
}

Line& Line::add(const std::string& k, const std::string& v) {
  text_.push_back({k, v});
  json_.push_back({k, nlohmann::json(v).dump()});
  return *this;
}

void Line::print(bool json) const {
  std::string s;
  if (json) {
    s = "{\"bench\": " + nlohmann::json(tag_).dump();
    for (auto& [k, v] : json_) s += ", " + nlohmann::json(k).dump() + ": " + v;
    s += "}";
  } else {
    s = tag_;
    for (auto& [k, v] : text_) s += " " + k + "=" + v;
  }
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
}

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
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace modelone::bench
