// The sampler: see sampler.h.
#include "model/sample/sampler.h"

#include <algorithm>
#include <cmath>

#include "model/base/check.h"
#include "model/base/splitmix.h"

namespace modelone {

namespace {

void require_in(double v, double lo, double hi, bool lo_open, const char* name) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
  MO_REQUIRE(ok, name, " ", v, " is outside ", lo_open ? "(" : "[", lo, ", ", hi, "]");
}

}  // namespace

void SamplingParams::validate(int64_t vocab) const {
  MO_REQUIRE(std::isfinite(temperature) && temperature >= 0, "temperature ", temperature,
             " must be 0 (greedy) or more");
  require_in(top_p, 0, 1, true, "top_p");
  require_in(min_p, 0, 1, false, "min_p");
  MO_REQUIRE(top_k >= 0, "top_k ", top_k, " must be 0 (all tokens) or more");
  MO_REQUIRE(std::isfinite(repetition_penalty) && repetition_penalty > 0, "repetition_penalty ",
             repetition_penalty, " must be more than 0 (1: off)");
  require_in(presence_penalty, -2, 2, false, "presence_penalty");
  require_in(frequency_penalty, -2, 2, false, "frequency_penalty");
  for (const auto& [id, bias] : logit_bias) {
    MO_REQUIRE(id >= 0 && id < vocab, "logit_bias names token ", id, ", outside the vocabulary [0, ",
               vocab, ")");
    require_in(bias, -100, 100, false, "logit_bias value");
  }
}

double sample_uniform(uint64_t seed, uint64_t sequence, int64_t position) {
  uint64_t h = splitmix64(seed ^ 0x5ea3b1e5f00dull);
  h = splitmix64(h + sequence * 0x9e3779b97f4a7c15ull);
  h = splitmix64(h ^ (uint64_t(position) * 0xc2b2ae3d27d4eb4full));
  return double(h >> 11) * 0x1p-53;
}

void apply_penalties(const SamplingParams& p, const std::vector<int32_t>& history,
                     int64_t n_prompt, float* logits, int64_t V) {
  for (const auto& [id, bias] : p.logit_bias) logits[id] += bias;
  if (p.repetition_penalty != 1) {  // only then: the history is the whole context, every token
    std::vector<int32_t> seen(history);  // distinct tokens of prompt and output
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float r = float(p.repetition_penalty);
    for (int32_t t : seen)
      if (t >= 0 && t < V) logits[t] = logits[t] > 0 ? logits[t] / r : logits[t] * r;
  }
  if (p.presence_penalty == 0 && p.frequency_penalty == 0) return;
  std::vector<int32_t> out(history.begin() + std::min<int64_t>(n_prompt, int64_t(history.size())),
                           history.end());
  std::sort(out.begin(), out.end());
  for (size_t i = 0; i < out.size();) {
    size_t j = i;
    while (j < out.size() && out[j] == out[i]) ++j;
    if (out[i] >= 0 && out[i] < V)
      logits[out[i]] -= float(p.frequency_penalty * double(j - i) + p.presence_penalty);
    i = j;
  }
}

namespace {

using Cand = std::pair<int32_t, double>;  // (token, unnormalised probability)

bool before(const Cand& a, const Cand& b) {  // more likely first, ties to the lower id
  return a.second != b.second ? a.second > b.second : a.first < b.first;
}

// Moves the first r candidates (most likely first, ties to the lower id) to c[0, r), c[r - 1]
// being the r-th, for the smallest r whose cumulative mass reaches `mass` (cum >= mass, or
// cum > mass when strict); returns r, or c.size() when the whole never reaches it. A peaked
// distribution reaches it within a few hundred: sorted prefixes doubling from 64 find it. Past
// 2048, selection instead of sorting: halves of the rest split by nth_element, keeping the half
// where the mass is reached, until 64 are left to sort and scan; O(V) where a flat distribution
// made the sorted prefix most of a 129K vocabulary. Per token at V = 129,280 (normal logits,
// T 0.8), sorted prefixes alone -> this: top-p 0.95 16.7 -> 6.5 ms, no top-p 6.6 -> 4.6 ms,
// top-p 0.5 2.6 -> 3.4 ms (its cut lies just past 2048), top-k 40 1.2 ms either way.
size_t select_until(std::vector<Cand>& c, double mass, bool strict) {
  auto reached = [&](double cum) { return strict ? cum > mass : cum >= mass; };
  size_t lo = 0, hi = c.size(), k = std::min<size_t>(hi, 64);
  double before_lo = 0;  // the mass of c[0, lo), all of it before c[lo, hi)
  for (; k <= 2048; k = std::min(hi, 2 * k)) {
    std::partial_sort(c.begin() + long(lo), c.begin() + long(k), c.end(), before);
    for (; lo < k; ++lo)
      if (reached(before_lo += c[lo].second)) return lo + 1;
    if (k == hi) return hi;
  }
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(c.begin() + long(lo), c.begin() + long(mid), c.begin() + long(hi), before);
    double left = 0;
    for (size_t i = lo; i < mid; ++i) left += c[i].second;
    if (reached(before_lo + left)) {
      hi = mid;
    } else {
      before_lo += left;
      lo = mid;
    }
  }
  std::sort(c.begin() + long(lo), c.begin() + long(hi), before);
  double cum = before_lo;
  for (size_t i = lo; i < hi; ++i)
    if (reached(cum += c[i].second)) return i + 1;
  return hi;  // reached at hi by the halves' sums, not by this order's (round-off), or never
}

double mass(const std::vector<Cand>& c) {
  double z = 0;
  for (const Cand& e : c) z += e.second;
  return z;
}

// Temperature, min-p, top-k and top-p: the candidates a draw picks from, unnormalised; a sorted
// prefix where top-k or top-p cut, otherwise in token order.
std::vector<Cand> candidates(const SamplingParams& p, const float* logits, int64_t V) {
  MO_CHECK(!p.greedy() && V > 0, "sampling at temperature ", p.temperature);
  const double inv_t = 1.0 / p.temperature;
  double m = -INFINITY;
  for (int64_t i = 0; i < V; ++i) m = std::max(m, double(logits[i]) * inv_t);
  // exp relative to the best: the best is 1, so min-p compares against min_p directly.
  std::vector<Cand> c;
  c.reserve(size_t(V));
  for (int64_t i = 0; i < V; ++i) {
    const double e = std::exp(double(logits[i]) * inv_t - m);
    if (e > 0 && e >= p.min_p) c.emplace_back(int32_t(i), e);
  }
  if (p.top_k > 0 && p.top_k < int64_t(c.size())) {
    std::partial_sort(c.begin(), c.begin() + p.top_k, c.end(), before);
    c.resize(size_t(p.top_k));
  }
  // Keep up to the token whose cumulative mass reaches top_p.
  if (p.top_p < 1) c.resize(std::max<size_t>(1, select_until(c, p.top_p * mass(c), false)));
  return c;
}

}  // namespace

std::vector<std::pair<int32_t, double>> sampling_distribution(const SamplingParams& p,
                                                              const float* logits, int64_t V) {
  std::vector<Cand> c = candidates(p, logits, V);
  std::sort(c.begin(), c.end(), before);
  const double z = mass(c);
  for (Cand& e : c) e.second /= z;
  return c;
}

int32_t sample_token(const SamplingParams& p, const float* logits, int64_t V,
                     const std::vector<int32_t>& history, int64_t n_prompt, uint64_t sequence,
                     int64_t position) {
  std::vector<float> l(logits, logits + V);
  apply_penalties(p, history, n_prompt, l.data(), V);
  if (p.greedy()) return int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  std::vector<Cand> c = candidates(p, l.data(), V);
  // The first token, most likely first, whose cumulative mass passes u of the whole.
  const double target = sample_uniform(p.seed, sequence, position) * mass(c);
  const size_t i = select_until(c, target, true);
  return c[std::min(i, c.size()) - 1].first;  // u within round-off of 1: the last
}

}  // namespace modelone
