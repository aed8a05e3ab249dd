#include "model/kernels/elementwise.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/kernels/omp_threads.h"

namespace modelone {

void rms_norm(float* x, int64_t n, float eps, const float* w) {
  float ss = 0.f;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float r = 1.f / std::sqrt(ss / float(n) + eps);
  if (w) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] * r * w[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] *= r;
  }
}

void rms_norm_rows(float* x, int64_t rows, int64_t n, int64_t ld, float eps, const float* w) {
  parallel_for(rows, rows * n > 32768 ? threads_here() : 1, [&](int64_t r) { rms_norm(x + r * ld, n, eps, w); });
}

void softmax(float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  if (m == -INFINITY) {
    std::fill(x, x + n, 0.f);
    return;
  }
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  const float inv = 1.f / s;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {
// One sortable key per value: ascending keys = descending values, then ascending index (the
// order top_k promises). Plain integers sort faster than indices through a comparator that reads
// x twice a compare (tiny's batch-32 decode step: top_k 9.4% of its samples before, 7.1% after).
// The value's bits are mapped to an order-preserving unsigned integer (negatives flipped,
// positives offset) and complemented; -0 first becomes +0, as the comparison ties them.
inline uint64_t top_key(float v, int32_t i) {
  uint32_t u;
  v += 0.f;  // -0 -> +0
  std::memcpy(&u, &v, 4);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (uint64_t(~u) << 32) | uint32_t(i);
}

// The k best keys of x[n] for k much smaller than n: one pass holding candidates, of which only
// the ones better than the k-th best so far get in; when 2k are held they are cut to the best k
// (the bar rises). Most values fail the one compare, so the pass costs about a load and a compare
// a value: 1.5x faster than nth_element at 2048 keys and top 8 (tiny's indexer in prefill), 3x at
// 65536 and top 512.
void best_keys_scan(const float* x, int64_t n, int64_t k, std::vector<uint64_t>& held) {
  held.clear();
  uint64_t bar = UINT64_MAX;  // a key must be below it to be among the best k
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t key = top_key(x[i], int32_t(i));
    if (key >= bar) continue;
    held.push_back(key);
    if (int64_t(held.size()) == 2 * k) {
      std::nth_element(held.begin(), held.begin() + (k - 1), held.end());
      held.resize(size_t(k));
      bar = held[size_t(k - 1)];
    }
  }
}
}  // namespace

void top_k(const float* x, int64_t n, int64_t k, int32_t* out) {
  if (k <= 0) return;
  static thread_local std::vector<uint64_t> keys;
  if (n >= 8 * k) {
    best_keys_scan(x, n, k, keys);
  } else {
    keys.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) keys[size_t(i)] = top_key(x[i], int32_t(i));
  }
  if (int64_t(keys.size()) > k) std::nth_element(keys.begin(), keys.begin() + k, keys.end());
  std::sort(keys.begin(), keys.begin() + k);
  for (int64_t i = 0; i < k; ++i) out[i] = int32_t(uint32_t(keys[size_t(i)]));
}

}  // namespace modelone
