#include "model/io/synthetic.h"

#include <cmath>
#include <numeric>
#include <vector>

#include "model/base/splitmix.h"

namespace modelone {

uint64_t name_hash(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

void synth_fill(uint64_t seed, uint64_t name_h, const Init& init, int64_t begin, int64_t end,
                float* out) {
  const uint64_t key = splitmix64(seed ^ splitmix64(name_h));
  // Uniform on [mean - a, mean + a] has standard deviation a / sqrt(3).
  const float a = init.std * std::sqrt(3.f), lo = init.mean - a, width = 2 * a;
#pragma omp parallel for schedule(static) if (end - begin > (1 << 16))
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t h = splitmix64(key + uint64_t(i) * 0x9e3779b97f4a7c15ull);
    out[i - begin] = lo + width * float(h >> 40) * (1.f / 16777216.f);
  }
}

void synth_tid2eid(uint64_t seed, uint64_t name_h, int64_t n_experts, int64_t k, int64_t row_begin,
                   int64_t row_end, int64_t* out) {
  const uint64_t key = splitmix64(seed ^ splitmix64(name_h));
  std::vector<int64_t> pool(static_cast<size_t>(n_experts));
  for (int64_t r = row_begin; r < row_end; ++r) {
    std::iota(pool.begin(), pool.end(), 0);
    for (int64_t j = 0; j < k; ++j) {  // partial Fisher-Yates
      const uint64_t h = splitmix64(key + uint64_t(r * k + j) * 0x9e3779b97f4a7c15ull);
      const int64_t pick = j + int64_t(h % uint64_t(n_experts - j));
      std::swap(pool[size_t(j)], pool[size_t(pick)]);
      out[(r - row_begin) * k + j] = pool[size_t(j)];
    }
  }
}

}  // namespace modelone
