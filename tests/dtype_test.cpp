// Scalar conversions against their definitions.
#include <gtest/gtest.h>

#include <cmath>

#include "model/dtype.h"

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
