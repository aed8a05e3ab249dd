// Per-rank timers and counters reduced over a communicator in one call: min, mean, max and sum of
// every field, the way KaMPIng's timers are, instead of one allreduce per field at each use.
// A struct takes part by listing its fields once, in a static template:
//   template <class S, class F> static void fields(S& s, F&& f) { f("route", s.route); ... }
// which serves the reduction, the difference of two snapshots and the sum of many.
#pragma once
#include <array>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "comm/comm.h"

namespace modelone::comm {

struct Spread {
  double min = 0, mean = 0, max = 0, sum = 0;
};

// Collective: each of the values reduced over the ranks of c (every rank passes as many).
std::vector<Spread> spread(const Comm& c, const std::vector<double>& mine);

// The spread of each field of a struct, by name.
class Reduced {
 public:
  Reduced(std::vector<std::string> names, std::vector<Spread> values)
      : names_(std::move(names)), values_(std::move(values)) {}
  const Spread& operator[](const std::string& field) const;  // an unknown field is an error
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::vector<Spread> values_;
};

// Collective over c: every field of s, min / mean / max / sum over the ranks.
template <class S>
Reduced reduce_fields(const Comm& c, const S& s) {
  std::vector<std::string> names;
  std::vector<double> v;
  S::fields(s, [&](const char* n, const auto& x) {
    names.emplace_back(n);
    v.push_back(double(x));
  });
  return Reduced(std::move(names), spread(c, v));
}

// a += sign * b field by field, without allocating (CpAttention::timers() sums its layers'
// timers with it): b's values go through a fixed array (at() throws past kMaxFields).
constexpr size_t kMaxFields = 16;
template <class S>
void fields_axpy(S& a, const S& b, int sign) {
  std::array<double, kMaxFields> bv{};
  size_t n = 0, i = 0;
  S::fields(b, [&](const char*, const auto& x) { bv.at(n++) = double(x); });
  S::fields(a, [&](const char*, auto& x) {
    x += static_cast<std::decay_t<decltype(x)>>(sign * bv[i++]);
  });
}

// a - b field by field: what happened between two snapshots.
template <class S>
S fields_minus(const S& a, const S& b) {
  S d = a;
  fields_axpy(d, b, -1);
  return d;
}

// a += b field by field.
template <class S>
void fields_add(S& a, const S& b) {
  fields_axpy(a, b, 1);
}

}  // namespace modelone::comm
