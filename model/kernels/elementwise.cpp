#include "model/kernels/elementwise.h"

#include <algorithm>
#include <numeric>

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

void top_k(const float* x, int64_t n, int64_t k, int32_t* out) {
  static thread_local std::vector<int32_t> idx;
  idx.resize(size_t(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), better);
  std::sort(idx.begin(), idx.begin() + k, better);
  std::copy(idx.begin(), idx.begin() + k, out);
}

}  // namespace modelone
