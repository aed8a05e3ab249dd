// Scalar conversions against their definitions.
#include <gtest/gtest.h>

#include <cmath>

#include "model/base/dtype.h"

namespace modelone {
namespace {

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  for (float v : {0.f, -2.5f, 3.140625f, std::ldexp(1.f, -100), -65536.f}) EXPECT_EQ(round_bf16(v), v) << v;
}

TEST(DType, E4m3EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_to_f32(uint8_t(c));
    if (std::isnan(v)) continue;
    const uint8_t back = f32_to_e4m3(v);
    if (v == 0.f) EXPECT_EQ(e4m3_to_f32(back), 0.f);
    else EXPECT_EQ(back, c) << "code " << c << " value " << v;
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.f);
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e);            // saturates
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(0.3f)), 0.3125f);  // nearest of 0.28125 / 0.3125
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.f, -9));   // smallest subnormal
}

// Reference rounding to e4m3 from the definition: the nearest representable value, ties to the
// even code, saturating at 448.
uint8_t e4m3_reference(float f) {
  uint8_t best = 0;
  double best_err = 1e300;
  for (int c = 0; c < 127; ++c) {  // non-negative finite codes
    const double v = e4m3_to_f32(uint8_t(c)), err = std::fabs(std::fabs(double(f)) - v);
    if (err < best_err || (err == best_err && (c % 2) == 0)) {
      best_err = err;
      best = uint8_t(c);
    }
  }
  return uint8_t((std::signbit(f) ? 0x80 : 0) | best);
}

TEST(DType, E4m3MatchesReferenceRounding) {
  std::vector<float> xs = {0.f, 448.f, 447.f, 464.f, 500.f, 1e9f, std::ldexp(1.f, -10),
                           std::ldexp(1.5f, -10), std::ldexp(1.f, -6), 0.0859375f, 1.0625f};
  uint32_t s = 12345;
  for (int i = 0; i < 20000; ++i) {  // random magnitudes across the whole range
    s = s * 1664525u + 1013904223u;
    xs.push_back(std::ldexp(1.f + float(s >> 8) / 16777216.f, int(s % 26) - 16) * ((s & 1) ? -1 : 1));
  }
  std::vector<uint8_t> fast(xs.size());
  f32_to_e4m3_scaled(xs.data(), 1.f, fast.data(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(f32_to_e4m3(xs[i]), e4m3_reference(xs[i])) << xs[i];
    if (std::fabs(xs[i]) <= 448.f) {
      EXPECT_EQ(fast[i], e4m3_reference(xs[i])) << xs[i];
    }
  }
}

TEST(DType, F16AndUe8m0) {
  for (float v : {0.f, 1.f, -2.f, 0.5f, 65504.f, std::ldexp(1.f, -24), 3.140625f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  EXPECT_EQ(ue8m0_to_f32(127), 1.f);
  EXPECT_EQ(ue8m0_to_f32(130), 8.f);
  EXPECT_EQ(f32_to_ue8m0_ceil(5.f), 130);   // 8 >= 5
  EXPECT_EQ(f32_to_ue8m0_ceil(4.f), 129);   // exactly a power of two
}

TEST(DType, WidenNarrowRoundTrip) {
  std::vector<float> x = {1.f, -0.375f, 2.5f, 96.f}, y(4);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3}) {
    std::vector<uint8_t> buf(x.size() * dtype_size(t));
    narrow_from_f32(t, x.data(), buf.data(), x.size());
    widen_to_f32(t, buf.data(), y.data(), y.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]) << dtype_name(t);
  }
}

}  // namespace
}  // namespace modelone
