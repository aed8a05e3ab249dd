// NumPy .npy output (format 1.0, little-endian float32, C order) for --logits-out, written
// through a temporary file and renamed so a failed run never leaves a half-written result.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace modelone {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

// Read back a float32 .npy (tests).
std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>* shape);

}  // namespace modelone
