// Kernels of the bf16 compute path: activations rounded to bf16, weights decoded to bf16 from
// their stored type (bf16, fp32, FP8 with block scales, FP4 e2m1), fp32 accumulation. Built with
// target attributes whatever the compile flags, and run only where cpu_features() allows; each
// has a portable fallback (same values; sums may round in another order).
#pragma once
#include <cstdint>

#include "model/io/weight_tensor.h"

namespace modelone {

// out[t, k] = bf16(x[t * ldx + k]) for t < T, k < K (round to nearest even).
void rows_to_bf16(const float* x, int64_t T, int64_t ldx, int64_t K, uint16_t* out);

// Rows [r0, r0 + n) of w as bf16 into out[n, w.cols()], scales applied. Exact for bf16, FP8 with
// power-of-two (E8M0) scales and FP4; fp32 and other scaled values are rounded to nearest even.
void weight_rows_bf16(const Weight& w, int64_t r0, int64_t n, uint16_t* out);

// out[i] = bf16(e4m3(codes[i]) * 2^e2) for i < n: exact (FP8 cache rows and keys, whose scales
// are powers of two).
void e4m3_to_bf16(const uint8_t* codes, int64_t n, int e2, uint16_t* out);

// y[t, r] (+)= sum_k xb[t, k] * W[r0 + r, k] for t < T (<= 8), r < nr, xb bf16 [T, ldxb] and W
// decoded to bf16 in registers as it streams (bf16, FP8 and FP4 read once at their stored
// width), products summed in fp32 by VDPBF16PS.
void dot_weight_rows_bf16(const uint16_t* xb, int64_t T, int64_t ldxb, const Weight& w, int64_t r0,
                          int64_t nr, float* y, int64_t ldy, bool accumulate);

// C[M, N] (+)= A[M, K] @ B[N, K]^T, A and B bf16, on the calling thread only (safe inside our
// parallel loops, unlike oneDNN's matmul): model/kernels/bf16_thread_gemm.cpp.
void gemm_bf16_nt_here(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                       const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);
// The same kernel over a panel packed ahead: B's rows [nb <= kPanelCols, K] (ldb) in VDPBF16PS's
// pair layout, panel[ceil(K / 2)][kPanelCols] uint32 (zeros past nb and K). Then
// C[M, nb] (+)= A[M, K] @ panel, on the calling thread: the grouped expert product packs each
// weight panel once (or reads it as loaded: DType::BF16_P64) and runs every row of its expert
// against it.
constexpr int64_t kPanelCols = kPanelRows;
void pack_panel_bf16(const uint16_t* B, int64_t ldb, int64_t nb, int64_t K, uint32_t* panel);
// next: the panel this thread runs after this one (same K), fetched into L2 while the row blocks
// after the first reuse this one from cache (null: none).
void gemm_bf16_panel(int64_t M, int64_t K, const uint16_t* A, int64_t lda, const uint32_t* panel,
                     int64_t nb, float* C, int64_t ldc, bool accumulate,
                     const uint32_t* next = nullptr);
// C[M, N] (+)= A[M, K] @ B[K, N], the same way.
void gemm_bf16_nn_here(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                       const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);

}  // namespace modelone
