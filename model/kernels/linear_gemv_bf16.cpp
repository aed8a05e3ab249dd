#include "model/kernels/linear_gemv_bf16.h"

// gcc 12 warns inside its own intrinsics headers (_mm512_undefined_*) under target attributes.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include "model/base/cpu_features.h"
#include "model/base/dtype.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

#define MO_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace {

MO_AVX512 inline __m512 load_bf16(const uint16_t* p) {  // 16 bf16 -> 16 fp32 (bf16 is fp32's top half)
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// Four weight rows against TN rows of x: 4 x TN accumulators stay in registers.
template <int TN>
MO_AVX512 void block4(const float* x, int64_t ldx, const uint16_t* W, int64_t K, float* y, int64_t ldy,
            bool accumulate) {
  __m512 acc[TN][4];
  for (int t = 0; t < TN; ++t)
    for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 w[4];
    for (int r = 0; r < 4; ++r) w[r] = load_bf16(W + r * K + k);
    for (int t = 0; t < TN; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + t * ldx + k);
      for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_fmadd_ps(xv, w[r], acc[t][r]);
    }
  }
  for (int t = 0; t < TN; ++t)
    for (int r = 0; r < 4; ++r) {
      float s = _mm512_reduce_add_ps(acc[t][r]);
      for (int64_t j = k; j < K; ++j) s += x[t * ldx + j] * bf16_to_f32(W[r * K + j]);
      float& out = y[t * ldy + r];
      out = accumulate ? out + s : s;
    }
}

void rows_scalar(const float* x, int64_t T, int64_t ldx, const uint16_t* W, int64_t K, int64_t nr,
                 float* y, int64_t ldy, bool accumulate) {
  for (int64_t r = 0; r < nr; ++r)
    for (int64_t t = 0; t < T; ++t) {
      float s = 0.f;
      for (int64_t j = 0; j < K; ++j) s += x[t * ldx + j] * bf16_to_f32(W[r * K + j]);
      float& out = y[t * ldy + r];
      out = accumulate ? out + s : s;
    }
}

MO_AVX512 void gemv_avx512(const float* x, int64_t T, int64_t ldx, const uint16_t* W, int64_t K,
                           int64_t N, float* y, int64_t ldy, bool accumulate) {
  const int64_t nb = N / 4;
  parallel_for(nb, threads_for_product(T, N, K), [&](int64_t b) {
    const uint16_t* w = W + b * 4 * K;
    float* yb = y + b * 4;
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
      const float* xt = x + t0 * ldx;
      float* yt = yb + t0 * ldy;
      switch (T - t0 >= 4 ? 4 : T - t0) {
        case 4: block4<4>(xt, ldx, w, K, yt, ldy, accumulate); break;
        case 3: block4<3>(xt, ldx, w, K, yt, ldy, accumulate); break;
        case 2: block4<2>(xt, ldx, w, K, yt, ldy, accumulate); break;
        default: block4<1>(xt, ldx, w, K, yt, ldy, accumulate); break;
      }
    }
  });
  if (N % 4) rows_scalar(x, T, ldx, W + nb * 4 * K, K, N % 4, y + nb * 4, ldy, accumulate);
}

}  // namespace

bool gemv_bf16(const float* x, int64_t T, int64_t ldx, const uint16_t* W, int64_t K, int64_t N,
               float* y, int64_t ldy, bool accumulate) {
  if (!cpu_features().avx512) return false;
  gemv_avx512(x, T, ldx, W, K, N, y, ldy, accumulate);
  return true;
}

}  // namespace modelone
