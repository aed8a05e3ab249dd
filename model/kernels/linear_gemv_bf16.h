// Decode-sized products against bf16 weights: y[T, N] (+)= x[T, K] @ W[N, K]^T for T <= 8, with
// the weight rows converted to fp32 in registers (no fp32 copy of the weight is ever written),
// so the bf16 weights stream from memory once at 2 bytes a parameter.
#pragma once
#include <cstdint>

namespace modelone {

// Returns false (and does nothing) where the CPU lacks AVX-512 (read at run time); the caller uses
// the portable widen-and-dot kernel.
bool gemv_bf16(const float* x, int64_t T, int64_t ldx, const uint16_t* W, int64_t K, int64_t N,
               float* y, int64_t ldy, bool accumulate);

}  // namespace modelone
