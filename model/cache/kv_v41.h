// DeepSeek-V4.1's cache rows in the form its fake quantization trained for (--kv-cache fp4):
//   window  width e4m3 values, then width / 32 UE8M0 scales (all dims, RoPE tail included):
//           528 bytes for 512 dims;
//   entry   width / 2 bytes of FP4 e2m1 codes (two a byte, low nibble first), then width / 16
//           e4m3 scales: 288 bytes for 512 dims;
//   key     width / 2 bytes of FP4 codes, then width / 32 UE8M0 scales: 68 bytes for 128 dims.
// Encoding a row applies V4.1's rule (model/kernels/fake_quant.h), so a raw row decodes to its fake
// quantization, and a row the forward already rounded decodes to itself exactly: with the fake
// quantization on, this store holds the model's own numbers in 890 B of compressed cache per
// token (V4.1-Flash) instead of 3220 B in bf16.
#pragma once
#include <cstdint>

namespace modelone {

enum class V41Row : uint8_t { Window, Entry, Key };

int64_t v41_row_bytes(V41Row kind, int64_t width);
void v41_row_encode(V41Row kind, const float* x, int64_t width, uint8_t* out);
void v41_row_decode(V41Row kind, const uint8_t* in, int64_t width, float* x);
// The same values as bf16 (exact: e2m1 or e4m3 times its scale needs at most 7 significant bits),
// for the bf16 compute path's indexer and attention tiles.
void v41_row_decode_bf16(V41Row kind, const uint8_t* in, int64_t width, uint16_t* x);

}  // namespace modelone
