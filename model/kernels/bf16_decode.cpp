#include "model/kernels/bf16_decode.h"

// gcc 12 warns inside its own intrinsics headers (_mm512_undefined_*) under target attributes.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "model/base/check.h"
#include "model/base/cpu_features.h"

namespace modelone {

#define MO_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define MO_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace {

// ---- activations to bf16 ------------------------------------------------------------------
// Round to nearest even in integer arithmetic, exactly as f32_to_bf16 (VCVTNEPS2BF16 would flush
// subnormals, so the vector and scalar paths could differ).
MO_AVX512 void to_bf16_avx512(const float* x, int64_t n, uint16_t* out) {
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_castps_si512(_mm512_loadu_ps(x + i));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, odd)), 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs), inf);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(r));
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

void narrow_rows(const float* f, int64_t n, uint16_t* out) {
  if (cpu_features().avx512) to_bf16_avx512(f, n, out);
  else for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(f[i]);
}

// ---- weight rows, 32 values at a time, as bf16 bits in a zmm --------------------------------
// FP8 and FP4 codes times a power of two are exact in bf16: a table gives each code's bf16 bits
// and the scale is added to the exponent field (zeros left alone).

struct Tables {
  uint16_t e4m3[128];  // bf16 bits of each e4m3 magnitude code
  uint16_t e2m1[32];   // bf16 bits of each e2m1 code (16 used)
  Tables() {
    auto bits = [](float f) { uint32_t u; std::memcpy(&u, &f, 4); return uint16_t(u >> 16); };
    for (int c = 0; c < 128; ++c) e4m3[c] = bits(e4m3_to_f32(uint8_t(c)));
    for (int c = 0; c < 32; ++c) e2m1[c] = c < 16 ? bits(e2m1_to_f32(uint8_t(c))) : 0;
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

// Multiply bf16 values by 2^e by adding e to the exponent of the lanes in nz (nonzero values).
MO_AVX512 inline __m512i scale_pow2(__m512i bits, __mmask32 nz, int e) {
  return _mm512_mask_add_epi16(bits, nz, bits, _mm512_set1_epi16(int16_t(e << 7)));
}

// 32 e4m3 codes (the lanes of m) to bf16 bits times 2^e2; t0..t3: the e4m3 table.
MO_AVX512 inline __m512i e4m3x32(const uint8_t* p, __mmask32 m, int e2, __m512i t0, __m512i t1,
                                 __m512i t2, __m512i t3) {
  const __m512i c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, p));
  const __m512i mag = _mm512_and_si512(c, _mm512_set1_epi16(0x7f));
  const __m512i lo = _mm512_permutex2var_epi16(t0, mag, t1);  // codes 0-63
  const __m512i hi = _mm512_permutex2var_epi16(t2, mag, t3);  // codes 64-127
  __m512i v = _mm512_mask_blend_epi16(_mm512_test_epi16_mask(mag, _mm512_set1_epi16(64)), lo, hi);
  v = _mm512_or_si512(v, _mm512_and_si512(_mm512_slli_epi16(c, 8), _mm512_set1_epi16(int16_t(0x8000))));
  return scale_pow2(v, _mm512_test_epi16_mask(mag, mag), e2);
}

MO_AVX512 void e4m3_to_bf16_avx512(const uint8_t* codes, int64_t n, int e2, uint16_t* out) {
  const uint16_t* e = tables().e4m3;
  const __m512i t0 = _mm512_loadu_si512(e), t1 = _mm512_loadu_si512(e + 32);
  const __m512i t2 = _mm512_loadu_si512(e + 64), t3 = _mm512_loadu_si512(e + 96);
  for (int64_t i = 0; i < n; i += 32) {
    const __mmask32 m = n - i >= 32 ? ~__mmask32(0) : __mmask32((1u << (n - i)) - 1);
    _mm512_mask_storeu_epi16(out + i, m, e4m3x32(codes + i, m, e2, t0, t1, t2, t3));
  }
}

struct Bf16Src {
  const uint16_t* w;
  int64_t K;
  MO_AVX512 __m512i load(int64_t r, int64_t k, __mmask32 m) const {
    return _mm512_maskz_loadu_epi16(m, w + r * K + k);
  }
  const void* row(int64_t r) const { return w + r * K; }
};

// n / d by a shift where d is a power of two (the block sizes always are in practice: a division
// per 32 values would cost as much as decoding them).
struct Div {
  int64_t d;
  int shift;
  explicit Div(int64_t dv) : d(dv), shift(__builtin_popcountll(uint64_t(dv)) == 1 ? __builtin_ctzll(uint64_t(dv)) : -1) {}
  int64_t operator()(int64_t n) const { return shift >= 0 ? n >> shift : n / d; }
};

struct Fp8Src {  // e4m3 codes [rows, K], E8M0 scale per (br x bc) block, bc % 32 == 0
  const uint8_t* w;
  const uint8_t* s;
  int64_t K, sc;
  Div br, bc;
  __m512i t0, t1, t2, t3;
  MO_AVX512 explicit Fp8Src(const Weight& wt)
      : w(static_cast<const uint8_t*>(wt.data)), s(static_cast<const uint8_t*>(wt.scale->data)),
        K(wt.cols()), sc(wt.scale->cols()), br(wt.block_rows), bc(wt.block_cols) {
    const uint16_t* e = tables().e4m3;
    t0 = _mm512_loadu_si512(e), t1 = _mm512_loadu_si512(e + 32);
    t2 = _mm512_loadu_si512(e + 64), t3 = _mm512_loadu_si512(e + 96);
  }
  MO_AVX512 __m512i load(int64_t r, int64_t k, __mmask32 m) const {
    return e4m3x32(w + r * K + k, m, int(s[br(r) * sc + bc(k)]) - 127, t0, t1, t2, t3);
  }
  const void* row(int64_t r) const { return w + r * K; }
};

struct Fp4Src {  // e2m1 codes two a byte (low nibble first), E8M0 scale per 32 of a row
  const uint8_t* w;
  const uint8_t* s;
  int64_t K;
  __m512i t;
  MO_AVX512 explicit Fp4Src(const Weight& wt)
      : w(static_cast<const uint8_t*>(wt.data)), s(static_cast<const uint8_t*>(wt.scale->data)),
        K(wt.cols()), t(_mm512_loadu_si512(tables().e2m1)) {}
  MO_AVX512 __m512i load(int64_t r, int64_t k, __mmask32) const {  // K % 32 == 0: no tails
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (r * K + k) / 2));
    const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(15));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
    const __m256i codes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi8(lo, hi)),
                                                  _mm_unpackhi_epi8(lo, hi), 1);
    const __m512i c = _mm512_cvtepu8_epi16(codes);
    const __m512i v = _mm512_permutexvar_epi16(c, t);
    return scale_pow2(v, _mm512_test_epi16_mask(c, _mm512_set1_epi16(7)),
                      int(s[(r * K + k) / 32]) - 127);
  }
  const void* row(int64_t r) const { return w + r * K / 2; }
};

inline __mmask32 tail_mask(int64_t left) {
  return left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
}

template <class Src>
MO_AVX512 void decode_rows(const Src& src, int64_t r0, int64_t n, int64_t K, uint16_t* out) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < K; k += 32) {
      const __mmask32 m = tail_mask(K - k);
      _mm512_mask_storeu_epi16(out + r * K + k, m, src.load(r0 + r, k, m));
    }
}

// ---- dot products ---------------------------------------------------------------------------
// Four weight rows against TN rows of x: 4 x TN accumulators stay in registers; each step
// decodes 32 values of every weight row (read once) and multiplies them with 32 of each x row.
template <class Src, int TN>
MO_AVX512_BF16 void dot4(const uint16_t* x, int64_t ldx, const Src& src, int64_t r0, int64_t K,
                         float* y, int64_t ldy, bool accumulate) {
  __m512 acc[TN][4];
  for (int t = 0; t < TN; ++t)
    for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    const __mmask32 m = tail_mask(K - k);
    __m512i w[4];
    for (int r = 0; r < 4; ++r) w[r] = src.load(r0 + r, k, m);
    for (int t = 0; t < TN; ++t) {
      const __m512i xv = _mm512_maskz_loadu_epi16(m, x + t * ldx + k);
      for (int r = 0; r < 4; ++r)
        acc[t][r] = _mm512_dpbf16_ps(acc[t][r], (__m512bh)xv, (__m512bh)w[r]);
    }
  }
  for (int t = 0; t < TN; ++t)
    for (int r = 0; r < 4; ++r) {
      const float s = _mm512_reduce_add_ps(acc[t][r]);
      float& o = y[t * ldy + r];
      o = accumulate ? o + s : s;
    }
}

template <class Src>
MO_AVX512_BF16 void dot1(const uint16_t* x, int64_t ldx, int64_t T, const Src& src, int64_t r,
                         int64_t K, float* y, int64_t ldy, bool accumulate) {
  for (int64_t t = 0; t < T; ++t) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) {
      const __mmask32 m = tail_mask(K - k);
      acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(m, x + t * ldx + k),
                             (__m512bh)src.load(r, k, m));
    }
    const float s = _mm512_reduce_add_ps(acc);
    float& o = y[t * ldy];
    o = accumulate ? o + s : s;
  }
}

template <class Src>
MO_AVX512_BF16 void dot_rows(const uint16_t* xb, int64_t T, int64_t ldxb, const Src& src, int64_t r0,
                             int64_t nr, int64_t K, float* y, int64_t ldy, bool accumulate) {
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) {
    // The next group's rows into cache while this one computes (the hardware prefetcher follows
    // a few streams; four rows of a large K are four streams).
    if (r + 8 <= nr)
      for (int j = 4; j < 8; ++j) {
        const char* p = static_cast<const char*>(src.row(r0 + r + j));
        for (int off = 0; off < 512; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
      }
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
      const uint16_t* xt = xb + t0 * ldxb;
      float* yt = y + t0 * ldy + r;
      switch (std::min<int64_t>(4, T - t0)) {
        case 4: dot4<Src, 4>(xt, ldxb, src, r0 + r, K, yt, ldy, accumulate); break;
        case 3: dot4<Src, 3>(xt, ldxb, src, r0 + r, K, yt, ldy, accumulate); break;
        case 2: dot4<Src, 2>(xt, ldxb, src, r0 + r, K, yt, ldy, accumulate); break;
        default: dot4<Src, 1>(xt, ldxb, src, r0 + r, K, yt, ldy, accumulate); break;
      }
    }
  }
  for (; r < nr; ++r) dot1(xb, ldxb, T, src, r0 + r, K, y + r, ldy, accumulate);
}

// Which fused source a weight has: 0 none (decode through fp32), 1 bf16, 2 FP8, 3 FP4.
int source_kind(const Weight& w) {
  if (!cpu_features().avx512) return 0;
  if (w.dtype == DType::BF16 && !w.scale) return 1;
  const bool e8m0 = w.scale && w.scale->dtype == DType::F8_E8M0;
  if (w.dtype == DType::F8_E4M3 && e8m0 && w.block_cols % 32 == 0 && w.block_rows >= 1) return 2;
  if (w.dtype == DType::F4_E2M1 && e8m0 && w.block_rows == 1 && w.block_cols == 32 && w.cols() % 32 == 0)
    return 3;
  return 0;
}

}  // namespace

void rows_to_bf16(const float* x, int64_t T, int64_t ldx, int64_t K, uint16_t* out) {
  for (int64_t t = 0; t < T; ++t) narrow_rows(x + t * ldx, K, out + t * K);
}

void e4m3_to_bf16(const uint8_t* codes, int64_t n, int e2, uint16_t* out) {
  if (cpu_features().avx512) {
    e4m3_to_bf16_avx512(codes, n, e2, out);
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(std::ldexp(e4m3_to_f32(codes[i]), e2));
}

void weight_rows_bf16(const Weight& w, int64_t r0, int64_t n, uint16_t* out) {
  const int64_t K = w.cols();
  MO_CHECK(r0 >= 0 && r0 + n <= w.rows(), w.name, " rows ", r0, "+", n);
  if (w.dtype == DType::BF16_P64) return panel_rows_bf16(w, r0, n, out);
  switch (source_kind(w)) {
    case 1: std::memcpy(out, static_cast<const uint16_t*>(w.data) + r0 * K, size_t(n * K) * 2); return;
    case 2: decode_rows(Fp8Src(w), r0, n, K, out); return;
    case 3: decode_rows(Fp4Src(w), r0, n, K, out); return;
    default: break;
  }
  // Anything else: widen to fp32 a few rows at a time, then round.
  static thread_local std::vector<float> buf;
  const int64_t step = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(K, 1));
  for (int64_t r = 0; r < n; r += step) {
    const int64_t m = std::min(step, n - r);
    buf.resize(size_t(m * K));
    w.rows_f32(r0 + r, m, buf.data());
    narrow_rows(buf.data(), m * K, out + r * K);
  }
}

void dot_weight_rows_bf16(const uint16_t* xb, int64_t T, int64_t ldxb, const Weight& w, int64_t r0,
                          int64_t nr, float* y, int64_t ldy, bool accumulate) {
  const int64_t K = w.cols();
  const int kind = cpu_features().avx512_bf16 ? source_kind(w) : -1;
  if (kind == 1) return dot_rows(xb, T, ldxb, Bf16Src{static_cast<const uint16_t*>(w.data), K}, r0, nr, K, y, ldy, accumulate);
  if (kind == 2) return dot_rows(xb, T, ldxb, Fp8Src(w), r0, nr, K, y, ldy, accumulate);
  if (kind == 3) return dot_rows(xb, T, ldxb, Fp4Src(w), r0, nr, K, y, ldy, accumulate);
  // Decode a few rows to bf16, then dot them (vector kernel if the CPU has it, else scalar).
  static thread_local std::vector<uint16_t> rows;
  constexpr int64_t kRows = 4;
  rows.resize(size_t(kRows * K));
  for (int64_t r = 0; r < nr; r += kRows) {
    const int64_t m = std::min(kRows, nr - r);
    weight_rows_bf16(w, r0 + r, m, rows.data());
    if (cpu_features().avx512_bf16) {
      dot_rows(xb, T, ldxb, Bf16Src{rows.data(), K}, 0, m, K, y + r, ldy, accumulate);
      continue;
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t t = 0; t < T; ++t) {
        float s = 0.f;
        for (int64_t k = 0; k < K; ++k) s += bf16_to_f32(xb[t * ldxb + k]) * bf16_to_f32(rows[size_t(i * K + k)]);
        float& o = y[t * ldy + r + i];
        o = accumulate ? o + s : s;
      }
  }
}

}  // namespace modelone
