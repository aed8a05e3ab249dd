// bf16 x bf16 -> fp32 matrix products through oneDNN's matmul (its brgemm kernels use VDPBF16PS
// on AVX512-BF16 and the tile unit on AMX; oneDNN picks at run time). Only the bf16 compute path
// calls this, and only where cpu_features().bf16() holds.
#pragma once
#include <cstdint>

namespace modelone {

// C[M, N] (+)= A[M, K] @ B[N, K]^T with A, B bf16 (row-major, leading dims lda / ldb) and C fp32
// (ldc). Runs on all OpenMP threads outside a parallel region (primitives made once per shape and
// kept); inside one, on the calling thread through gemm_bf16_nt_here.
void matmul_bf16_nt(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                    const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);

// Primitives made so far (for tests of the cache).
int64_t matmul_bf16_primitives();

}  // namespace modelone
