// Element types a checkpoint or cache can hold, and their scalar conversions to and from fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace modelone {

// F4_E2M1: FP4 e2m1, two codes per byte, the low nibble first (DeepSeek's routed experts, which
// ship as I8 tensors of packed codes). I8 / U8: raw bytes as safetensors declares them.
// BF16_P64: bf16 repacked at load for the bf16 kernels, never in a file: a weight [R, K] (R a
// multiple of 64, K even) as R / 64 panels of 64 rows, each [K / 2][64] uint32 whose (k, j) holds
// elements 2k (low half) and 2k + 1 of the panel's row j: VDPBF16PS's pair layout (weight_tensor.h).
enum class DType : uint8_t { F32, BF16, F16, F8_E4M3, F8_E8M0, I64, I32, F4_E2M1, I8, U8, BF16_P64 };

size_t dtype_size(DType t);                // bytes per element (1 for F4_E2M1: see dtype_bytes)
size_t dtype_bytes(DType t, size_t n);     // bytes of n elements (F4_E2M1: n / 2, rounded up)
std::string_view dtype_name(DType t);           // safetensors spelling: "F32", "BF16", ...
bool dtype_from_name(std::string_view s, DType* out);
inline bool dtype_is_float(DType t) {
  return t != DType::I64 && t != DType::I32 && t != DType::I8 && t != DType::U8;
}
// FP4 e2m1 code (0-15) to fp32: 0, 0.5, 1, 1.5, 2, 3, 4, 6, and codes 8-15 their negatives.
inline float e2m1_to_f32(uint8_t code) {
  static constexpr float kMag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  return (code & 8) ? -kMag[code & 7] : kMag[code & 7];
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// OCP FP8 E4M3 ("fn": no infinities, 0x7f/0xff are NaN, max finite 448).
float e4m3_to_f32(uint8_t v);
uint8_t f32_to_e4m3(float f);  // round to nearest even, saturating at +-448
// out[i] = e4m3(x[i] * scale), for |x[i] * scale| <= 448 (clamped there): branch-free so it
// vectorizes; same rounding as f32_to_e4m3.
void f32_to_e4m3_scaled(const float* x, float scale, uint8_t* out, size_t n);
// UE8M0: an unsigned power-of-two scale 2^(v - 127); 0xff is NaN.
inline float ue8m0_to_f32(uint8_t v) {
  if (v == 0xff) return __builtin_nanf("");
  uint32_t u = v == 0 ? 0x00400000u : uint32_t(v) << 23;  // 2^-127 is subnormal in fp32
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Smallest power of two >= |f| (as a UE8M0 code), used for FP8 block scales.
uint8_t f32_to_ue8m0_ceil(float f);

// Widen n elements of type t at src to fp32 (dst must not alias src).
void widen_to_f32(DType t, const void* src, float* dst, size_t n);
// x rounded to what storing it as type t and reading it back gives (in place).
void round_to_dtype(DType t, float* x, size_t n);
// Narrow n fp32 values to type t (floating types only).
void narrow_from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace modelone
