// GCC 12's AVX-512 intrinsics build on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "model/cache/kv_v41.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/base/check.h"
#include "model/base/dtype.h"
#include "model/kernels/fake_quant.h"

namespace modelone {

namespace {

constexpr int64_t kWin = 32, kEnt = 16, kKey = 32;  // values per scale

// The e2m1 code of a value on the e2m1 grid.
uint8_t e2m1_exact_code(float q) {
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
    const uint8_t lo = e2m1_exact_code(e2m1_round(std::clamp(x[i] / s, -6.f, 6.f)));
    const uint8_t hi = e2m1_exact_code(e2m1_round(std::clamp(x[i + 1] / s, -6.f, 6.f)));
    codes[i / 2] = uint8_t(lo | (hi << 4));
  }
}

// The e2m1 values of the 16 codes, a lookup for the vector decode.
alignas(64) constexpr float kE2m1[16] = {0.f,  0.5f,  1.f,  1.5f,  2.f,  3.f,  4.f,  6.f,
                                         -0.f, -0.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

#ifdef __AVX512F__
// 16 values from the 8 bytes at codes (low nibble first), times s: the nibbles become lane
// indices into the 16-entry table (one vpermps).
inline __m512 fp4x16(const uint8_t* codes, __m512 lut, __m512 s) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes));
  const __m512i dup = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));  // b0 b0 b1 b1 ...
  const __m512i shift = _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0);
  const __m512i idx = _mm512_and_si512(_mm512_srlv_epi32(dup, shift), _mm512_set1_epi32(15));
  return _mm512_mul_ps(_mm512_permutexvar_ps(idx, lut), s);
}
#endif

// x[n] = the n codes (two a byte) times s; n a multiple of 16.
void get_fp4(const uint8_t* codes, int64_t n, float s, float* x) {
#ifdef __AVX512F__
  const __m512 lut = _mm512_load_ps(kE2m1), vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(x + i, fp4x16(codes + i / 2, lut, vs));
#else
  for (int64_t i = 0; i < n; i += 2) {
    x[i] = kE2m1[codes[i / 2] & 15] * s;
    x[i + 1] = kE2m1[codes[i / 2] >> 4] * s;
  }
#endif
}

// The same as bf16 (the top half of each fp32 value: exact here).
void get_fp4_bf16(const uint8_t* codes, int64_t n, float s, uint16_t* x) {
#ifdef __AVX512F__
  const __m512 lut = _mm512_load_ps(kE2m1), vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    const __m512i bits = _mm512_srli_epi32(_mm512_castps_si512(fp4x16(codes + i / 2, lut, vs)), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + i), _mm512_cvtepi32_epi16(bits));
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    const float f = kE2m1[(codes[i / 2] >> (4 * (i & 1))) & 15] * s;
    uint32_t u;
    std::memcpy(&u, &f, 4);
    x[i] = uint16_t(u >> 16);
  }
#endif
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

void v41_row_decode_bf16(V41Row kind, const uint8_t* in, int64_t width, uint16_t* x) {
  // Decoded in fp32 a block at a time, then the top half of each value: exact (see above).
  float f[32];
  const int64_t blk = kind == V41Row::Window ? kWin : kind == V41Row::Entry ? kEnt : kKey;
  const uint8_t* scales = in + (kind == V41Row::Window ? width : width / 2);
  for (int64_t b = 0; b < width / blk; ++b) {
    const float s = kind == V41Row::Entry ? e4m3_to_f32(scales[b]) : ue8m0_to_f32(scales[b]);
    if (kind != V41Row::Window) {  // the indexer's hot path: keys straight to bf16
      get_fp4_bf16(in + b * blk / 2, blk, s, x + b * blk);
      continue;
    }
    for (int64_t i = 0; i < blk; ++i) f[i] = e4m3_to_f32(in[b * blk + i]) * s;
    for (int64_t i = 0; i < blk; ++i) {
      uint32_t u;
      std::memcpy(&u, &f[i], 4);
      x[b * blk + i] = uint16_t(u >> 16);
    }
  }
}

}  // namespace modelone
