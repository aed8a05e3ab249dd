#include "model/dtype.h"

#include <array>
#include <cmath>

#include "model/check.h"

namespace modelone {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::F8_E4M3: case DType::F8_E8M0: return 1;
    case DType::I64: return 8;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::F8_E8M0: return "F8_E8M0";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
  }
  return "?";
}

bool dtype_from_name(std::string_view s, DType* out) {
  static const std::pair<std::string_view, DType> names[] = {
      {"F32", DType::F32},         {"BF16", DType::BF16},       {"F16", DType::F16},
      {"F8_E4M3", DType::F8_E4M3}, {"F8_E8M0", DType::F8_E8M0}, {"I64", DType::I64},
      {"I32", DType::I32}};
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
  if (std::isnan(f)) return 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= 448.f) return sign | 0x7e;  // saturate to max finite
  if (a < std::ldexp(1.f, -6)) {       // subnormal: multiples of 2^-9
    return sign | uint8_t(std::nearbyint(std::ldexp(a, 9)));  // 8 rounds up to the first normal
  }
  int e;
  float m = std::frexp(a, &e);  // a = m * 2^e
  int mant = int(std::nearbyint(std::ldexp(m, 4)));  // 4 bits incl. implicit, in [8, 16]
  if (mant == 16) { mant = 8; ++e; }
  int exp = e - 1 + 7;
  if (exp > 15 || (exp == 15 && mant - 8 == 7)) return sign | 0x7e;
  return sign | uint8_t((exp << 3) | (mant - 8));
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
    default: MO_CHECK(false, "narrow_from_f32 to ", dtype_name(t));
  }
}

}  // namespace modelone
