// Element-wise and row-wise fp32 kernels shared by the blocks.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace modelone {

// x[n] *= rsqrt(mean(x^2) + eps) (* w[n] when w is given), in place.
void rms_norm(float* x, int64_t n, float eps, const float* w = nullptr);
// rms_norm on each of `rows` rows of length n with stride ld.
void rms_norm_rows(float* x, int64_t rows, int64_t n, int64_t ld, float eps,
                   const float* w = nullptr);

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
inline float silu(float x) { return x / (1.f + std::exp(-x)); }
// torch.nn.functional.softplus with its default threshold of 20.
inline float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

// In-place softmax over x[n] (max-subtracted).
void softmax(float* x, int64_t n);

// Indices of the k largest values of x[n] (k <= n), largest first; ties go to the lower index.
void top_k(const float* x, int64_t n, int64_t k, int32_t* out);

}  // namespace modelone
