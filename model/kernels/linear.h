// Dense products against checkpoint weights. A weight W is [rows, K] row-major, as checkpoints
// store nn.Linear weights, so every projection is y = x @ W^T.
#pragma once
#include <cstdint>

#include "model/io/weight_tensor.h"

namespace modelone {

// The arithmetic of linear().
//   F32:  the exact reference. fp32 weights go straight to OpenBLAS sgemm; other dtypes are
//         widened to fp32 one tile of rows at a time (small T: a fused widen-and-dot kernel).
//   BF16: x rounded to bf16, weights decoded from their stored type to bf16 (bf16 as stored, FP8
//         and FP4 a tile at a time), products summed in fp32: oneDNN's matmul for T > kGemvMaxRows,
//         our VDPBF16PS kernel below that. Needs AVX512-BF16 or AMX (cpu_features().bf16()).
enum class Compute { F32, BF16 };
void set_compute(Compute c);  // BF16 on a CPU without it is an error
Compute compute_mode();
Compute default_compute();    // BF16 where the CPU has it, else F32
const char* compute_name(Compute c);  // "fp32" / "bf16"

// y[T, N] (+)= x[T, K] @ W[r0 : r0 + N, :]^T, with row strides ldx / ldy, in compute_mode().
void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
            float* y, int64_t ldy, bool accumulate = false);
// The same in fp32 whatever the mode: the router's scores and the mHC mixes, which DeepSeek's
// reference computes in fp32 (small products that decide routing and the residual mix).
void linear_fp32(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
                 float* y, int64_t ldy, bool accumulate = false);
// The same in bf16 whatever the mode (where the CPU has it).
void linear_bf16(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
                 float* y, int64_t ldy, bool accumulate = false);

inline void linear(const float* x, int64_t T, const Weight& w, float* y) {
  linear(x, T, w.cols(), w, 0, w.rows(), y, w.rows());
}

// The argument checks both paths share: the weight is there and rows [r0, r0 + N) exist.
void check_linear(const Weight& w, int64_t r0, int64_t N);

// C[M, N] = A[M, K] @ B[N, K]^T, all fp32 row-major with leading dims (OpenBLAS sgemm).
void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta = 0.f);
// C[M, N] = A[M, K] @ B[K, N].
void sgemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta = 0.f);

// Threads for our OpenMP loops; OpenBLAS is pinned to one thread per caller.
void set_compute_threads(int n);

// Below this many rows of x, linear() uses the GEMV kernel for non-fp32 weights.
constexpr int64_t kGemvMaxRows = 8;

}  // namespace modelone
