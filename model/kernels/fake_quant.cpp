#include "model/kernels/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/base/check.h"
#include "model/base/dtype.h"

namespace modelone {

namespace {

void check_blocks(int64_t n, int64_t block) {
  MO_CHECK(block > 0 && n % block == 0, n, " values do not split into blocks of ", block);
}

// x = e2m1(clamp(x / s, +-6)) * s over one block.
void fp4_block(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] = e2m1_round(std::clamp(x[i] / s, -6.f, 6.f)) * s;
}

}  // namespace

float block_amax(const float* x, int64_t n) {
  float a = 0.f;
  for (int64_t i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}

float pow2_ceil(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const int exp = int((u >> 23) & 0xff) - 127, up = (u & 0x7fffff) != 0;
  return std::ldexp(1.f, exp + up);
}

float e2m1_round(float v) {
  const float a = std::fabs(v);
  const float step = a < 2.f ? 0.5f : a < 4.f ? 1.f : 2.f;
  return std::copysign(std::nearbyint(a / step) * step, v);  // nearbyint: ties to even
}

void fake_quant_fp8_ue8m0(float* x, int64_t n, int64_t block) {
  check_blocks(n, block);
  const float inv448 = 1.f / 448.f;
  for (int64_t b = 0; b < n; b += block) {
    const float s = pow2_ceil(std::max(block_amax(x + b, block), 1e-4f) * inv448);
    for (int64_t i = b; i < b + block; ++i)
      x[i] = e4m3_to_f32(f32_to_e4m3(std::clamp(x[i] / s, -448.f, 448.f))) * s;
  }
}

void fake_quant_fp4_ue8m0(float* x, int64_t n, int64_t block) {
  check_blocks(n, block);
  const float inv6 = 1.f / 6.f;
  for (int64_t b = 0; b < n; b += block)
    fp4_block(x + b, block, pow2_ceil(std::max(block_amax(x + b, block), 6.f * 0x1p-126f) * inv6));
}

void fake_quant_fp4_e4m3(float* x, int64_t n, int64_t block) {
  check_blocks(n, block);
  for (int64_t b = 0; b < n; b += block) {
    const float s = e4m3_to_f32(f32_to_e4m3(std::max(block_amax(x + b, block), 6.f * 0x1p-9f) / 6.f));
    fp4_block(x + b, block, s);
  }
}

}  // namespace modelone
