// C[M, N] (+)= A[M, K] @ B^T (B stored [N, K]) or A @ B (B stored [K, N]) in bf16 with fp32
// sums, on the calling thread alone: for the products that run inside our own parallel loops
// (the indexer's scores, the attention cores), where oneDNN's matmul must not be called (its
// OpenMP kernels assume they own the team).
//
// B is repacked 64 output columns at a time into VDPBF16PS's pair layout, Bp[k/2][64][2], so a
// zmm holds the (k, k+1) pairs of 16 columns; each A row's pair is broadcast against 4 such zmm.
// Register block: 6 rows of A x 64 columns = 24 accumulators.
#include "model/kernels/bf16_decode.h"

// gcc 12 warns inside its own intrinsics headers (_mm512_undefined_*) under target attributes.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/base/check.h"
#include "model/base/cpu_features.h"
#include "model/base/dtype.h"

namespace modelone {

namespace {

#define MO_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

constexpr int64_t kNb = kPanelCols, kMb = 6;

// Bp[kp][j][2] = column n0 + j of the product's B at k = 2 kp, 2 kp + 1 (zeros past nb and K).
// nt: B stored [N, K] (row n0 + j); nn: B stored [K, N] (column n0 + j).
void pack_b(bool nt, const uint16_t* B, int64_t ldb, int64_t n0, int64_t nb, int64_t K, uint32_t* Bp) {
  const int64_t kp = (K + 1) / 2;
  if (kp == 0) return;  // K = 0 (attention over no keys): nothing to pack, and Bp may be null
  std::memset(Bp, 0, size_t(kp * kNb) * 4);
  if (nt) {
    for (int64_t j = 0; j < nb; ++j) {
      const uint16_t* row = B + (n0 + j) * ldb;
      for (int64_t p = 0; p < K / 2; ++p) {
        uint32_t v;
        std::memcpy(&v, row + 2 * p, 4);
        Bp[p * kNb + j] = v;
      }
      if (K % 2) Bp[(K / 2) * kNb + j] = row[K - 1];
    }
    return;
  }
  for (int64_t p = 0; p < kp; ++p) {
    const uint16_t* r0 = B + (2 * p) * ldb + n0;
    const uint16_t* r1 = 2 * p + 1 < K ? r0 + ldb : nullptr;
    for (int64_t j = 0; j < nb; ++j) Bp[p * kNb + j] = uint32_t(r0[j]) | (r1 ? uint32_t(r1[j]) << 16 : 0u);
  }
}

// Lines [0, pf_lines) of pf are prefetched into L2 evenly over the loop (the next weight panel,
// while this block reads the current one from cache).
template <int MB>
MO_AVX512_BF16 void block(const uint16_t* A, int64_t lda, int64_t K, const uint32_t* Bp, float* C,
                          int64_t ldc, int64_t nb, bool accumulate, const char* pf = nullptr,
                          int64_t pf_lines = 0) {
  __m512 acc[MB][4];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t kp = (K + 1) / 2;
  int64_t line = 0;
  for (int64_t p = 0; p < kp; ++p) {
    for (; line < pf_lines && line * kp < (p + 1) * pf_lines; ++line)
      _mm_prefetch(pf + line * 64, _MM_HINT_T1);
    __m512i b[4];
    for (int j = 0; j < 4; ++j) b[j] = _mm512_loadu_si512(Bp + p * kNb + 16 * j);
    for (int i = 0; i < MB; ++i) {
      uint32_t pair;
      if (2 * p + 1 < K) std::memcpy(&pair, A + i * lda + 2 * p, 4);
      else pair = A[i * lda + 2 * p];  // odd K: the last value pairs with zero
      const __m512i a = _mm512_set1_epi32(int(pair));
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)a, (__m512bh)b[j]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < 4; ++j) {
      const int64_t left = nb - 16 * j;
      if (left <= 0) break;
      const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
      float* c = C + i * ldc + 16 * j;
      __m512 v = acc[i][j];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, c));
      _mm512_mask_storeu_ps(c, m, v);
    }
}

// pack_b's nn case in registers: each pair of B's rows, 16 columns at a time, widened to 32 bits
// and the second row's value shifted into the high half (zeros past nb and K, as pack_b writes).
// The attention cores' P @ V packs every key this way once per query and head block: the scalar
// loop was a large part of a small model's attend.
MO_AVX512_BF16 void pack_nn_avx512(const uint16_t* B, int64_t ldb, int64_t n0, int64_t nb, int64_t K,
                                   uint32_t* Bp) {
  const int64_t kp = (K + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const uint16_t* r0 = B + (2 * p) * ldb + n0;
    const uint16_t* r1 = 2 * p + 1 < K ? r0 + ldb : nullptr;
    for (int64_t j0 = 0; j0 < kNb; j0 += 16) {
      const int64_t left = std::clamp<int64_t>(nb - j0, 0, 16);
      const __mmask16 m = left == 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r0 + j0));
      const __m512i hi = r1 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r1 + j0)) : _mm512_setzero_si512();
      _mm512_storeu_si512(Bp + p * kNb + j0, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// pack_b in registers where it can be (the same values): nt as a weight panel is packed
// (pack_panel_bf16: the 16 x 16 transpose when K and ldb are even), nn always.
MO_AVX512_BF16 void pack_b_avx512(bool nt, const uint16_t* B, int64_t ldb, int64_t n0, int64_t nb,
                                  int64_t K, uint32_t* Bp) {
  if (K == 0) return;
  if (!nt) return pack_nn_avx512(B, ldb, n0, nb, K, Bp);
  pack_panel_bf16(B + n0 * ldb, ldb, nb, K, Bp);
}

MO_AVX512_BF16 void gemm_avx512(bool nt, int64_t M, int64_t N, int64_t K, const uint16_t* A,
                                int64_t lda, const uint16_t* B, int64_t ldb, float* C, int64_t ldc,
                                bool accumulate) {
  static thread_local std::vector<uint32_t> bp;
  bp.resize(size_t((K + 1) / 2 * kNb));
  for (int64_t n0 = 0; n0 < N; n0 += kNb) {
    const int64_t nb = std::min(kNb, N - n0);
    pack_b_avx512(nt, B, ldb, n0, nb, K, bp.data());
    int64_t m = 0;
    for (; m + kMb <= M; m += kMb) block<kMb>(A + m * lda, lda, K, bp.data(), C + m * ldc + n0, ldc, nb, accumulate);
    const uint16_t* a = A + m * lda;
    float* c = C + m * ldc + n0;
    switch (M - m) {
      case 5: block<5>(a, lda, K, bp.data(), c, ldc, nb, accumulate); break;
      case 4: block<4>(a, lda, K, bp.data(), c, ldc, nb, accumulate); break;
      case 3: block<3>(a, lda, K, bp.data(), c, ldc, nb, accumulate); break;
      case 2: block<2>(a, lda, K, bp.data(), c, ldc, nb, accumulate); break;
      case 1: block<1>(a, lda, K, bp.data(), c, ldc, nb, accumulate); break;
      default: break;
    }
  }
}

}  // namespace

namespace {
void gemm_here(bool nt, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  if (cpu_features().avx512_bf16) {
    gemm_avx512(nt, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k)
        s += bf16_to_f32(A[i * lda + k]) * bf16_to_f32(nt ? B[j * ldb + k] : B[k * ldb + j]);
      float& c = C[i * ldc + j];
      c = accumulate ? c + s : s;
    }
}
}  // namespace

void gemm_bf16_nt_here(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                       const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_here(true, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

void gemm_bf16_nn_here(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                       const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_here(false, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

namespace {
// The pair layout is a transpose of B's rows read as uint32 pairs: panel[p][j] = pair p of row j.
// In registers, 16 rows x 16 pairs at a time (unpack 32 / 64 bit, then two rounds of 128-bit
// lane shuffles), about ten times the scalar strided stores (a 64 x 4096 panel: 173 us scalar on
// a Zen 5), which the grouped expert product pays once per panel per call.
MO_AVX512_BF16 void transpose16(__m512i r[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // u[i + c]: rows i..i+3 at column 4 L + c of lane L
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
    const __m512i b = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i x = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
    const __m512i y = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    out[c] = _mm512_shuffle_i32x4(a, x, 0x88);
    out[4 + c] = _mm512_shuffle_i32x4(b, y, 0x88);
    out[8 + c] = _mm512_shuffle_i32x4(a, x, 0xdd);
    out[12 + c] = _mm512_shuffle_i32x4(b, y, 0xdd);
  }
}

// B's rows [nb, K] (K even, ldb even) into the panel, 16 x 16 pairs a block; zeros past nb.
MO_AVX512_BF16 void pack_transpose(const uint16_t* B, int64_t ldb, int64_t nb, int64_t K,
                                   uint32_t* panel) {
  const int64_t kp = K / 2;
  __m512i r[16], o[16];
  for (int64_t j0 = 0; j0 < kPanelCols; j0 += 16)
    for (int64_t p0 = 0; p0 < kp; p0 += 16) {
      const int64_t np = std::min<int64_t>(16, kp - p0);
      const __mmask16 m = np == 16 ? __mmask16(0xffff) : __mmask16((1u << np) - 1);
      for (int i = 0; i < 16; ++i)
        r[i] = j0 + i < nb ? _mm512_maskz_loadu_epi32(m, B + (j0 + i) * ldb + 2 * p0)
                           : _mm512_setzero_si512();
      transpose16(r, o);
      for (int64_t c = 0; c < np; ++c) _mm512_storeu_si512(panel + (p0 + c) * kPanelCols + j0, o[c]);
    }
}
}  // namespace

void pack_panel_bf16(const uint16_t* B, int64_t ldb, int64_t nb, int64_t K, uint32_t* panel) {
  MO_CHECK(nb > 0 && nb <= kPanelCols, "pack_panel_bf16: ", nb, " columns");
  if (cpu_features().avx512 && K % 2 == 0 && ldb % 2 == 0) return pack_transpose(B, ldb, nb, K, panel);
  pack_b(true, B, ldb, 0, nb, K, panel);
}

namespace {
MO_AVX512_BF16 void panel_avx512(int64_t M, int64_t K, const uint16_t* A, int64_t lda,
                                 const uint32_t* panel, int64_t nb, float* C, int64_t ldc,
                                 bool accumulate, const uint32_t* next) {
  // While the row blocks run over this panel (the first from memory, the others from cache), the
  // next panel is fetched into L2, a share in each block, so memory keeps streaming while the
  // products run. Not for one block: the whole next panel at once would hold up this one's loads.
  // (Measured with 2 threads, K = 4096: 12 rows 312-408 -> 443-447 GFLOP/s, 16 rows 374-420 ->
  // 473-486; 8% faster decode steps at batch 32.)
  const int64_t blocks = M / kMb, lines = (K + 1) / 2 * kPanelCols * 4 / 64;
  const int64_t share = next && blocks >= 2 ? (lines + blocks - 1) / blocks : 0;
  int64_t m = 0;
  for (int64_t b = 0; m + kMb <= M; m += kMb, ++b) {
    const int64_t first = std::min(lines, b * share), n = std::min(lines - first, share);
    const char* pf = n > 0 ? reinterpret_cast<const char*>(next) + first * 64 : nullptr;
    block<kMb>(A + m * lda, lda, K, panel, C + m * ldc, ldc, nb, accumulate, pf, n);
  }
  const uint16_t* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 5: block<5>(a, lda, K, panel, c, ldc, nb, accumulate); break;
    case 4: block<4>(a, lda, K, panel, c, ldc, nb, accumulate); break;
    case 3: block<3>(a, lda, K, panel, c, ldc, nb, accumulate); break;
    case 2: block<2>(a, lda, K, panel, c, ldc, nb, accumulate); break;
    case 1: block<1>(a, lda, K, panel, c, ldc, nb, accumulate); break;
    default: break;
  }
}
}  // namespace

void gemm_bf16_panel(int64_t M, int64_t K, const uint16_t* A, int64_t lda, const uint32_t* panel,
                     int64_t nb, float* C, int64_t ldc, bool accumulate, const uint32_t* next) {
  if (M == 0) return;
  if (cpu_features().avx512_bf16) return panel_avx512(M, K, A, lda, panel, nb, C, ldc, accumulate, next);
  // Portable: the same pairs in the same order, summed in fp32 per column.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < nb; ++j) {
      float s = 0.f;
      for (int64_t p = 0; p < (K + 1) / 2; ++p) {
        const uint32_t b = panel[p * kPanelCols + j];
        const uint16_t a0 = A[i * lda + 2 * p], a1 = 2 * p + 1 < K ? A[i * lda + 2 * p + 1] : 0;
        s += bf16_to_f32(a0) * bf16_to_f32(uint16_t(b & 0xffff)) +
             bf16_to_f32(a1) * bf16_to_f32(uint16_t(b >> 16));
      }
      float& c = C[i * ldc + j];
      c = accumulate ? c + s : s;
    }
}

}  // namespace modelone
