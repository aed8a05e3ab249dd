#include "model/cache/kv_fp8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/base/dtype.h"

namespace modelone {

namespace {

constexpr int64_t kNopeTile = 64, kKeyTile = 128;

// The power of two at or above amax / 448 (1 for an all-zero tile), as a UE8M0 code.
uint8_t tile_scale(const float* x, int64_t n) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax > 0 ? f32_to_ue8m0_ceil(amax / 448.f) : uint8_t(127);
}

}  // namespace

int64_t fp8_entry_bytes(int64_t head_dim, int64_t rope_dim) {
  const int64_t nope = head_dim - rope_dim;
  const int64_t raw = nope + 2 * rope_dim + (nope + kNopeTile - 1) / kNopeTile;
  return (raw + 7) / 8 * 8;
}

void fp8_entry_encode(const float* x, int64_t head_dim, int64_t rope_dim, uint8_t* out) {
  const int64_t nope = head_dim - rope_dim, tiles = (nope + kNopeTile - 1) / kNopeTile;
  std::memset(out, 0, size_t(fp8_entry_bytes(head_dim, rope_dim)));
  uint8_t* scales = out + nope + 2 * rope_dim;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t a = t * kNopeTile, n = std::min(kNopeTile, nope - a);
    scales[t] = tile_scale(x + a, n);
    f32_to_e4m3_scaled(x + a, 1.f / ue8m0_to_f32(scales[t]), out + a, size_t(n));
  }
  auto* rope = reinterpret_cast<uint16_t*>(out + nope);  // nope is even: 2-byte aligned offset
  for (int64_t i = 0; i < rope_dim; ++i) {
    const uint16_t v = f32_to_bf16(x[nope + i]);
    std::memcpy(rope + i, &v, 2);
  }
}

// Decoding runs for every key the indexer scores: the table-driven widen, then a scale per tile.
void fp8_entry_decode(const uint8_t* in, int64_t head_dim, int64_t rope_dim, float* x) {
  const int64_t nope = head_dim - rope_dim;
  const uint8_t* scales = in + nope + 2 * rope_dim;
  widen_to_f32(DType::F8_E4M3, in, x, size_t(nope));
  for (int64_t a = 0, t = 0; a < nope; a += kNopeTile, ++t) {
    const float s = ue8m0_to_f32(scales[t]);
    for (int64_t i = a; i < std::min(nope, a + kNopeTile); ++i) x[i] *= s;
  }
  widen_to_f32(DType::BF16, in + nope, x + nope, size_t(rope_dim));
}

int64_t fp8_key_bytes(int64_t dim) { return dim + 4 * ((dim + kKeyTile - 1) / kKeyTile); }

void fp8_key_encode(const float* x, int64_t dim, uint8_t* out) {
  for (int64_t a = 0, t = 0; a < dim; a += kKeyTile, ++t) {
    const int64_t n = std::min(kKeyTile, dim - a);
    const float s = ue8m0_to_f32(tile_scale(x + a, n));
    f32_to_e4m3_scaled(x + a, 1.f / s, out + a, size_t(n));
    std::memcpy(out + dim + 4 * t, &s, 4);
  }
}

void fp8_key_decode(const uint8_t* in, int64_t dim, float* x) {
  widen_to_f32(DType::F8_E4M3, in, x, size_t(dim));
  for (int64_t a = 0, t = 0; a < dim; a += kKeyTile, ++t) {
    float s;
    std::memcpy(&s, in + dim + 4 * t, 4);
    for (int64_t i = a; i < std::min(dim, a + kKeyTile); ++i) x[i] *= s;
  }
}

}  // namespace modelone
