#include "model/kernels/panel_weights.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "model/base/check.h"
#include "model/base/large_alloc.h"
#include "model/base/cpu_features.h"
#include "model/kernels/bf16_decode.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

bool pack_weight_panels(Weight& w) {
  const int64_t R = w.rows(), K = w.cols();
  if (w.empty() || w.dtype != DType::BF16 || w.scale || R % kPanelRows || K % 2 || K == 0)
    return false;
  const int64_t per_panel = K / 2 * kPanelRows, n = R / kPanelRows;  // uint32 per panel, panels
  const size_t bytes = size_t(n * per_panel) * 4;                     // a multiple of 256
  std::shared_ptr<char> owner = alloc_large(bytes, w.name.c_str());
  auto* buf = reinterpret_cast<uint32_t*>(owner.get());
  const auto* src = static_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < n; ++p)
    pack_panel_bf16(src + p * kPanelRows * K, K, kPanelRows, K, buf + p * per_panel);
  w.dtype = DType::BF16_P64;
  w.data = buf;
  w.owner = std::move(owner);  // the rows' buffer (or file mapping) goes when nothing else holds it
  return true;
}

namespace {

#define MO_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// fp32 arithmetic over a bf16 panel: C[T <= 4, 64] (+)= x[T, K] @ panel, each bf16 weight
// widened exactly to fp32 in registers (low half: v << 16, high half: v & 0xffff0000).
template <int TB>
MO_AVX512 void panel_f32_block(const float* x, int64_t ldx, int64_t K, const uint32_t* panel,
                               float* C, int64_t ldc, bool accumulate) {
  __m512 acc[TB][4];
  for (int t = 0; t < TB; ++t)
    for (int j = 0; j < 4; ++j) acc[t][j] = _mm512_setzero_ps();
  const __m512i hi_mask = _mm512_set1_epi32(int(0xffff0000u));
  for (int64_t p = 0; p < K / 2; ++p) {
    __m512 lo[4], hi[4];
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_loadu_si512(panel + p * kPanelRows + 16 * j);
      lo[j] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(__mmask16(0xffff), v, 16));  // maskz: no undefined source (GCC 12 warns)
      hi[j] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
    }
    for (int t = 0; t < TB; ++t) {
      const __m512 a0 = _mm512_set1_ps(x[t * ldx + 2 * p]), a1 = _mm512_set1_ps(x[t * ldx + 2 * p + 1]);
      for (int j = 0; j < 4; ++j) acc[t][j] = _mm512_fmadd_ps(a1, hi[j], _mm512_fmadd_ps(a0, lo[j], acc[t][j]));
    }
  }
  for (int t = 0; t < TB; ++t)
    for (int j = 0; j < 4; ++j) {
      float* c = C + t * ldc + 16 * j;
      _mm512_storeu_ps(c, accumulate ? _mm512_add_ps(acc[t][j], _mm512_loadu_ps(c)) : acc[t][j]);
    }
}

MO_AVX512 void panel_f32_avx512(int64_t M, int64_t K, const float* x, int64_t ldx,
                                const uint32_t* panel, float* C, int64_t ldc, bool accumulate) {
  for (int64_t t = 0; t < M; t += 4) {
    const float* a = x + t * ldx;
    float* c = C + t * ldc;
    switch (std::min<int64_t>(4, M - t)) {
      case 4: panel_f32_block<4>(a, ldx, K, panel, c, ldc, accumulate); break;
      case 3: panel_f32_block<3>(a, ldx, K, panel, c, ldc, accumulate); break;
      case 2: panel_f32_block<2>(a, ldx, K, panel, c, ldc, accumulate); break;
      default: panel_f32_block<1>(a, ldx, K, panel, c, ldc, accumulate); break;
    }
  }
}

// C[M, 64] (+)= x[M, K] @ panel in fp32 (portable: the same products, summed in the same order).
void gemm_f32_panel(int64_t M, int64_t K, const float* x, int64_t ldx, const uint32_t* panel,
                    float* C, int64_t ldc, bool accumulate) {
  if (cpu_features().avx512) return panel_f32_avx512(M, K, x, ldx, panel, C, ldc, accumulate);
  for (int64_t t = 0; t < M; ++t)
    for (int64_t j = 0; j < kPanelRows; ++j) {
      float s = 0.f;
      for (int64_t p = 0; p < K / 2; ++p) {
        const uint32_t v = panel[p * kPanelRows + j];
        s = std::fma(x[t * ldx + 2 * p], bf16_to_f32(uint16_t(v & 0xffff)), s);
        s = std::fma(x[t * ldx + 2 * p + 1], bf16_to_f32(uint16_t(v >> 16)), s);
      }
      float& c = C[t * ldc + j];
      c = accumulate ? c + s : s;
    }
}

// Rows [r0, r0 + N) of W's product over tasks of (panel, up to 256 rows of x): run(p, t0, m, C,
// ldc, acc, next) computes panel p's 64 columns for x rows [t0, t0 + m), next being the panel the
// thread runs after it (to fetch ahead; null: none); a panel that [r0, r0 + N) cuts goes through
// scratch and only its wanted columns land in y.
template <class Run>
void over_panels(const Weight& w, int64_t T, int64_t r0, int64_t N, float* y, int64_t ldy,
                 bool accumulate, Run&& run) {
  MO_CHECK(w.dtype == DType::BF16_P64 && r0 >= 0 && r0 + N <= w.rows(), w.name, ": rows ", r0,
           "+", N, " of ", w.rows());
  if (T == 0 || N == 0) return;
  constexpr int64_t kRowsPerTask = 256;  // 2 MiB of bf16 x at K = 4096, against a K * 128 B panel
  const int64_t p0 = r0 / kPanelRows, np = (r0 + N - 1) / kPanelRows + 1 - p0;
  const int64_t nb = (T + kRowsPerTask - 1) / kRowsPerTask, tasks = np * nb;
  // Task k on thread k mod threads: each knows the task it runs next, k + threads.
  const int nt = int(std::min<int64_t>(threads_for_product(T, np * kPanelRows, w.cols()), tasks));
  team(nt, [&](int th, int stride) {
    for (int64_t k = th; k < tasks; k += stride) {
      const int64_t p = p0 + k / nb, b = k % nb, c0 = p * kPanelRows, lo = std::max(c0, r0);
      const int64_t hi = std::min(c0 + kPanelRows, r0 + N);
      const int64_t t0 = b * kRowsPerTask, m = std::min(kRowsPerTask, T - t0);
      const int64_t after = k + stride < tasks ? p0 + (k + stride) / nb : -1;
      const uint32_t* next = after >= 0 && after != p ? weight_panel(w, after) : nullptr;
      if (lo == c0 && hi == c0 + kPanelRows) {
        run(p, t0, m, y + t0 * ldy + (c0 - r0), ldy, accumulate, next);
        continue;
      }
      static thread_local std::vector<float> tmp;
      tmp.resize(size_t(m * kPanelRows));
      run(p, t0, m, tmp.data(), kPanelRows, false, next);
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = lo; c < hi; ++c) {
          float& o = y[(t0 + r) * ldy + (c - r0)];
          const float v = tmp[size_t(r * kPanelRows + (c - c0))];
          o = accumulate ? o + v : v;
        }
    }
  });
}

}  // namespace

void linear_panels(const uint16_t* xb, int64_t T, int64_t ldx, const Weight& w, int64_t r0,
                   int64_t N, float* y, int64_t ldy, bool accumulate) {
  const int64_t K = w.cols();
  over_panels(w, T, r0, N, y, ldy, accumulate,
              [&](int64_t p, int64_t t0, int64_t m, float* C, int64_t ldc, bool acc, const uint32_t* next) {
                gemm_bf16_panel(m, K, xb + t0 * ldx, ldx, weight_panel(w, p), kPanelRows, C, ldc, acc, next);
              });
}

void linear_panels_f32(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0,
                       int64_t N, float* y, int64_t ldy, bool accumulate) {
  const int64_t K = w.cols();
  over_panels(w, T, r0, N, y, ldy, accumulate,
              [&](int64_t p, int64_t t0, int64_t m, float* C, int64_t ldc, bool acc, const uint32_t*) {
                gemm_f32_panel(m, K, x + t0 * ldx, ldx, weight_panel(w, p), C, ldc, acc);
              });
}

}  // namespace modelone
