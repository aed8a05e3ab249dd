// DeepSeek-V4.1's fake quantization: values rounded in place to what an FP8 / FP4 store of them
// would give back, inside the forward pass (quantization-aware training made it part of the
// model's numerics: it moves the indexer's top-k picks). Per block of `block` values:
//   fp8_ue8m0  window KV, blocks of 32:  s = 2^ceil(log2(max(amax, 1e-4) * fp32(1/448)))
//              x = e4m3(clamp(x / s, +-448)) * s
//   fp4_ue8m0  indexer q and k, blocks of 32:  s = 2^ceil(log2(max(amax, 6 * 2^-126) * fp32(1/6)))
//   fp4_e4m3   compressed entries, blocks of 16:  s = e4m3(max(amax, 6 * 2^-9) / 6)
//              x = e2m1(clamp(x / s, +-6)) * s
// e4m3 and e2m1 round to nearest, ties to even; e2m1's grid is {0, .5, 1, 1.5, 2, 3, 4, 6}.
#pragma once
#include <cstdint>

namespace modelone {

float pow2_ceil(float x);   // 2^ceil(log2 x) for positive normal x, exactly
float e2m1_round(float v);  // v within [-6, 6]: the nearest e2m1 value, ties to the even code
float block_amax(const float* x, int64_t n);  // max |x[i]| over n values (0 for none)

// n values, n a multiple of block.
void fake_quant_fp8_ue8m0(float* x, int64_t n, int64_t block);
void fake_quant_fp4_ue8m0(float* x, int64_t n, int64_t block);
void fake_quant_fp4_e4m3(float* x, int64_t n, int64_t block);

// The block sizes V4.1 uses for each.
constexpr int64_t kWindowQuantBlock = 32, kEntryQuantBlock = 16, kIndexQuantBlock = 32;

}  // namespace modelone
