// Weights quantized as DeepSeek's release stores them, made in memory from fp32 values: FP8 e4m3
// with an E8M0 (power-of-two) scale per block x block, or FP4 e2m1 packed two codes a byte (low
// nibble first) with an E8M0 scale per 32 values of a row. For benchmarks and tests that need
// the release dtypes without a checkpoint file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/io/weight_tensor.h"

namespace modelone {

// values: [rows, cols] row-major. dtype F8_E4M3 (block: the scale block's side) or F4_E2M1
// (cols a multiple of 32; block unused). Scales are the smallest powers of two that keep each
// block within the format's range (448 for e4m3, 6 for e2m1).
Weight quantize_weight(std::string name, DType dtype, int64_t rows, int64_t cols,
                       const std::vector<float>& values, int64_t block = 128);

}  // namespace modelone
