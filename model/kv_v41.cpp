#include "model/kv_v41.h"

#include <algorithm>
#include <cmath>

#include "model/check.h"
#include "model/dtype.h"
#include "model/fake_quant.h"

namespace modelone {

namespace {

constexpr int64_t kWin = 32, kEnt = 16, kKey = 32;  // values per scale

float block_amax(const float* x, int64_t n) {
  float a = 0.f;
  for (int64_t i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}

// The e2m1 code of a value on the e2m1 grid.
uint8_t e2m1_code(float q) {
  static constexpr float kMag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float a = std::fabs(q);
  uint8_t m = 0;
  while (m < 7 && kMag[m] != a) ++m;
  return uint8_t(m | (std::signbit(q) && a != 0.f ? 8 : 0));
}

// Whether x[n] / s lands on the e2m1 grid exactly (the row was rounded with this scale).
bool exact_fp4(const float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i)
    if (e2m1_round(std::clamp(x[i] / s, -6.f, 6.f)) * s != x[i]) return false;
  return true;
}

// The e4m3 scale of a block of 16: V4.1's rule, unless the block was already rounded with
// another e4m3 scale (re-deriving it from a rounded block can differ where the scale is
// subnormal): then that one, found as amax / q for the grid value q its largest value took.
float entry_scale(const float* x) {
  const float amax = block_amax(x, kEnt);
  const float s0 = e4m3_to_f32(f32_to_e4m3(std::max(amax, 6.f * 0x1p-9f) / 6.f));
  if (amax == 0.f || exact_fp4(x, kEnt, s0)) return s0;
  for (float q : {6.f, 4.f, 3.f, 2.f, 1.5f, 1.f, 0.5f}) {
    const float s = amax / q;
    if (s >= 0x1p-9f && e4m3_to_f32(f32_to_e4m3(s)) == s && exact_fp4(x, kEnt, s)) return s;
  }
  return s0;  // a raw row: quantize it
}

void put_fp4(const float* x, int64_t n, float s, uint8_t* codes) {
  for (int64_t i = 0; i < n; i += 2) {
    const uint8_t lo = e2m1_code(e2m1_round(std::clamp(x[i] / s, -6.f, 6.f)));
    const uint8_t hi = e2m1_code(e2m1_round(std::clamp(x[i + 1] / s, -6.f, 6.f)));
    codes[i / 2] = uint8_t(lo | (hi << 4));
  }
}

void get_fp4(const uint8_t* codes, int64_t n, float s, float* x) {
  for (int64_t i = 0; i < n; i += 2) {
    x[i] = e2m1_to_f32(codes[i / 2] & 15) * s;
    x[i + 1] = e2m1_to_f32(codes[i / 2] >> 4) * s;
  }
}

uint8_t ue8m0_code(float pow2) { return uint8_t(std::ilogb(pow2) + 127); }

}  // namespace

int64_t v41_row_bytes(V41Row kind, int64_t width) {
  switch (kind) {
    case V41Row::Window: return width + width / kWin;
    case V41Row::Entry: return width / 2 + width / kEnt;
    case V41Row::Key: return width / 2 + width / kKey;
  }
  return 0;
}

void v41_row_encode(V41Row kind, const float* x, int64_t width, uint8_t* out) {
  const int64_t blk = kind == V41Row::Window ? kWin : kind == V41Row::Entry ? kEnt : kKey;
  MO_CHECK(width % blk == 0, width, " values do not split into blocks of ", blk);
  const int64_t nb = width / blk;
  uint8_t* scales = out + (kind == V41Row::Window ? width : width / 2);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * blk;
    if (kind == V41Row::Window) {
      const float s = pow2_ceil(std::max(block_amax(xb, blk), 1e-4f) * (1.f / 448.f));
      for (int64_t i = 0; i < blk; ++i) out[b * blk + i] = f32_to_e4m3(std::clamp(xb[i] / s, -448.f, 448.f));
      scales[b] = ue8m0_code(s);
    } else if (kind == V41Row::Entry) {
      const float s = entry_scale(xb);
      put_fp4(xb, blk, s, out + b * blk / 2);
      scales[b] = f32_to_e4m3(s);
    } else {
      const float s = pow2_ceil(std::max(block_amax(xb, blk), 6.f * 0x1p-126f) * (1.f / 6.f));
      put_fp4(xb, blk, s, out + b * blk / 2);
      scales[b] = ue8m0_code(s);
    }
  }
}

void v41_row_decode(V41Row kind, const uint8_t* in, int64_t width, float* x) {
  const int64_t blk = kind == V41Row::Window ? kWin : kind == V41Row::Entry ? kEnt : kKey;
  const uint8_t* scales = in + (kind == V41Row::Window ? width : width / 2);
  for (int64_t b = 0; b < width / blk; ++b) {
    const float s = kind == V41Row::Entry ? e4m3_to_f32(scales[b]) : ue8m0_to_f32(scales[b]);
    if (kind == V41Row::Window) {
      for (int64_t i = 0; i < blk; ++i) x[b * blk + i] = e4m3_to_f32(in[b * blk + i]) * s;
    } else {
      get_fp4(in + b * blk / 2, blk, s, x + b * blk);
    }
  }
}

}  // namespace modelone
