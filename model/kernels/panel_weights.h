// Weights repacked once at load into the bf16 panel kernel's layout (DType::BF16_P64, dtype.h),
// and linear() over them. Why: the grouped expert product (model/blocks/moe_grouped.h) packed
// every 64-row panel of every expert on every call, a quarter of the experts' time at 2048
// tokens; packed ahead, the kernel reads a panel as it lies in memory, and a decode step's few
// rows stream it the same way (the same bytes as bf16, in another order).
#pragma once
#include <cstdint>

#include "model/io/weight_tensor.h"

namespace modelone {

// w (BF16 [R, K], no scales, R a multiple of 64, K even) repacked into a new 64-byte aligned
// BF16_P64 buffer, on all threads (call outside a parallel region). False, w unchanged, for
// any other weight.
bool pack_weight_panels(Weight& w);

// y[T, N] (+)= xb[T, K] @ W[r0 : r0 + N, :]^T for a BF16_P64 weight W [R, K], xb bf16 with row
// stride ldx. Tasks of (panel, up to 256 rows of x) over the threads available here.
void linear_panels(const uint16_t* xb, int64_t T, int64_t ldx, const Weight& w, int64_t r0,
                   int64_t N, float* y, int64_t ldy, bool accumulate);
// The same in fp32 (x fp32, each weight widened exactly): the fp32 path's decode-sized
// products over a packed weight (linear_fp32 at T <= kGemvMaxRows; larger T widen rows).
void linear_panels_f32(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0,
                       int64_t N, float* y, int64_t ldy, bool accumulate);

}  // namespace modelone
