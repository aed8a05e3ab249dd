#include "model/base/dtype.h"

#include <array>
#include <cmath>

#include "model/base/check.h"

namespace modelone {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: case DType::BF16_P64: return 2;
    case DType::F8_E4M3: case DType::F8_E8M0: case DType::F4_E2M1: case DType::I8: case DType::U8:
      return 1;
    case DType::I64: return 8;
  }
  return 0;
}

size_t dtype_bytes(DType t, size_t n) { return t == DType::F4_E2M1 ? (n + 1) / 2 : n * dtype_size(t); }

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::F8_E8M0: return "F8_E8M0";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::F4_E2M1: return "F4_E2M1";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BF16_P64: return "BF16_P64";
  }
  return "?";
}

bool dtype_from_name(std::string_view s, DType* out) {
  static const std::pair<std::string_view, DType> names[] = {
      {"F32", DType::F32},         {"BF16", DType::BF16},       {"F16", DType::F16},
      {"F8_E4M3", DType::F8_E4M3}, {"F8_E8M0", DType::F8_E8M0}, {"I64", DType::I64},
      {"I32", DType::I32},         {"I8", DType::I8},           {"U8", DType::U8}};
  for (auto& [n, t] : names)
    if (n == s) { *out = t; return true; }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float mag;
  if (exp == 0) mag = std::ldexp(float(man), -24);
  else if (exp == 31) mag = man ? __builtin_nanf("") : __builtin_inff();
  else mag = std::ldexp(float(man | 0x400), int(exp) - 25);
  uint32_t u;
  std::memcpy(&u, &mag, 4);
  u |= sign;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = uint16_t((u >> 16) & 0x8000);
  float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00;
  if (a >= 65520.f) return sign | 0x7c00;  // rounds to infinity
  if (a < std::ldexp(1.f, -14)) {          // subnormal: multiples of 2^-24
    return sign | uint16_t(std::nearbyint(std::ldexp(a, 24)));
  }
  int e;
  float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  uint32_t mant = uint32_t(std::nearbyint(std::ldexp(m, 11)));  // 11 bits incl. implicit
  if (mant == 2048) { mant = 1024; ++e; }
  return sign | uint16_t(((e + 14) << 10) | (mant & 0x3ff));
}

float e4m3_to_f32(uint8_t v) {
  int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
  if (exp == 15 && man == 7) return __builtin_nanf("");
  float mag = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(float(8 + man), exp - 10);
  return sign ? -mag : mag;
}

uint8_t f32_to_e4m3(float f) {
  // Bit arithmetic (no libm), so packing FP8 rows runs at memory speed.
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint8_t sign = uint8_t((u >> 24) & 0x80);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return 0x7f;                   // NaN
  if (u >= 0x43e00000u) return sign | 0x7e;           // >= 448: saturate to max finite
  if (u < 0x3c800000u) {                              // below 2^-6: multiples of 2^-9
    float a;
    std::memcpy(&a, &u, 4);
    return sign | uint8_t(std::lrintf(a * 512.f));    // 8 lands on the first normal (0x08)
  }
  u += 0x7ffffu + ((u >> 20) & 1u);                   // round the mantissa to 3 bits, ties even
  const uint32_t exp = (u >> 23) - 120, man = (u >> 20) & 7u;  // rebias 127 -> 7
  if (exp > 15 || (exp == 15 && man == 7)) return sign | 0x7e;
  return sign | uint8_t((exp << 3) | man);
}

void f32_to_e4m3_scaled(const float* x, float scale, uint8_t* out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i] * scale;
    const float a = std::min(std::fabs(v), 448.f);
    uint32_t u, t, sb;
    std::memcpy(&u, &a, 4);
    std::memcpy(&sb, &v, 4);
    // Normals: round the mantissa to 3 bits (ties even), then rebias the exponent 127 -> 7.
    const uint32_t r = u + 0x7ffffu + ((u >> 20) & 1u);
    const uint32_t normal = (r >> 20) - (120u << 3);
    // Subnormals (below 2^-6): a * 2^9 rounded to an integer by the 2^23 trick.
    const float s9 = a * 512.f + 8388608.f;
    std::memcpy(&t, &s9, 4);
    const uint32_t code = u < 0x3c800000u ? (t & 0xffu) : normal;
    out[i] = uint8_t(code | ((sb >> 24) & 0x80u));
  }
}

uint8_t f32_to_ue8m0_ceil(float f) {
  float a = std::fabs(f);
  if (!(a > 0)) return 0;
  int e;
  float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int p = m == 0.5f ? e - 1 : e;  // 2^p >= a
  int code = p + 127;
  return uint8_t(code < 0 ? 0 : code > 254 ? 254 : code);
}

void widen_to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F4_E2M1: {  // n codes from the start of src (an even element offset)
      // A byte at a time through a table of its two values: 10x the per-code loop.
      static const auto pairs = [] {
        std::array<std::array<float, 2>, 256> t{};
        for (int b = 0; b < 256; ++b) t[size_t(b)] = {e2m1_to_f32(uint8_t(b & 15)), e2m1_to_f32(uint8_t(b >> 4))};
        return t;
      }();
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n / 2; ++i) std::memcpy(dst + 2 * i, pairs[s[i]].data(), 8);
      if (n % 2) dst[n - 1] = e2m1_to_f32(s[n / 2] & 0xf);
      return;
    }
    case DType::I8: {
      auto* s = static_cast<const int8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::U8: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      auto* d = reinterpret_cast<uint32_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = uint32_t(s[i]) << 16;  // vectorizes
      return;
    }
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F8_E4M3: {
      static const auto table = [] {
        std::array<float, 256> t{};
        for (int i = 0; i < 256; ++i) t[i] = e4m3_to_f32(uint8_t(i));
        return t;
      }();
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::F8_E8M0: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = ue8m0_to_f32(s[i]);
      return;
    }
    case DType::I64: {
      auto* s = static_cast<const int64_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::I32: {
      auto* s = static_cast<const int32_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::BF16_P64:  // where an element sits depends on its row: Weight::rows_f32 reads it
      MO_CHECK(false, "widen_to_f32 on a BF16_P64 weight");
  }
}

void round_to_dtype(DType t, float* x, size_t n) {
  switch (t) {
    case DType::F32: return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) x[i] = round_bf16(x[i]);
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) x[i] = f16_to_f32(f32_to_f16(x[i]));
      return;
    case DType::F8_E4M3:
      for (size_t i = 0; i < n; ++i) x[i] = e4m3_to_f32(f32_to_e4m3(x[i]));
      return;
    default: MO_CHECK(false, "round_to_dtype ", dtype_name(t));
  }
}

void narrow_from_f32(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F8_E4M3: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_e4m3(src[i]);
      return;
    }
    case DType::I8: {  // integral values in [-128, 127] (packed FP4 bytes, as the release stores them)
      auto* d = static_cast<int8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = int8_t(std::lrint(src[i]));
      return;
    }
    case DType::U8: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = uint8_t(std::lrint(src[i]));
      return;
    }
    case DType::F8_E8M0: {  // scales: the power of two at or above each value
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_ue8m0_ceil(src[i]);
      return;
    }
    default: MO_CHECK(false, "narrow_from_f32 to ", dtype_name(t));
  }
}

}  // namespace modelone
