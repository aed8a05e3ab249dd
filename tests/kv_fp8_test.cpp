// FlashMLA's MODEL1 FP8 KV entry and the fp8 indexer key: sizes (584 bytes at V4's 512 = 448 +
// 64), where each part sits, one entry encoded by hand, and round trips within e4m3 precision.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/base/dtype.h"
#include "model/cache/kv_fp8.h"

namespace modelone {
namespace {

TEST(KvFp8, Model1Sizes) {
  EXPECT_EQ(fp8_entry_bytes(512, 64), 584);  // 448 + 128 + 7 scales + 1 pad
  EXPECT_EQ(fp8_key_bytes(128), 132);        // 128 + one fp32 scale
  EXPECT_EQ(fp8_entry_bytes(64, 16), 48 + 32 + 1 + 7);  // tiny: one short tile, padded to 8
}

TEST(KvFp8, EntryByHand) {
  // NoPE all 1.0 except tile 3 at -3.0; RoPE 0.5. Tile scale 2^ceil(log2(amax / 448)):
  // 1 / 448 -> 2^-8 (code 119), 3 / 448 -> 2^-7 (code 120). 1.0 / 2^-8 = 256 = e4m3 0x78;
  // -3 / 2^-7 = -384 = e4m3 0xFC. RoPE 0.5 = bf16 0x3F00.
  std::vector<float> x(512, 1.f);
  for (int i = 192; i < 256; ++i) x[size_t(i)] = -3.f;
  for (int i = 448; i < 512; ++i) x[size_t(i)] = 0.5f;
  std::vector<uint8_t> e(584, 0xAA);
  fp8_entry_encode(x.data(), 512, 64, e.data());
  EXPECT_EQ(e[0], 0x78);
  EXPECT_EQ(e[447], 0x78);
  EXPECT_EQ(e[200], 0xFC);
  uint16_t r;
  std::memcpy(&r, e.data() + 448, 2);
  EXPECT_EQ(r, 0x3F00);
  const uint8_t scales[7] = {119, 119, 119, 120, 119, 119, 119};
  for (int t = 0; t < 7; ++t) EXPECT_EQ(e[size_t(576 + t)], scales[t]) << "tile " << t;
  EXPECT_EQ(e[583], 0) << "padding";
  std::vector<float> back(512);
  fp8_entry_decode(e.data(), 512, 64, back.data());
  EXPECT_EQ(back, x) << "these values are exact in the format";
}

TEST(KvFp8, RoundTripsWithinE4m3) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.f, 2.f);
  std::vector<float> x(512), back(512);
  for (auto& v : x) v = n(rng);
  std::vector<uint8_t> e(584);
  fp8_entry_encode(x.data(), 512, 64, e.data());
  fp8_entry_decode(e.data(), 512, 64, back.data());
  for (int i = 0; i < 448; ++i) {
    float amax = 0;
    for (int j = i / 64 * 64; j < i / 64 * 64 + 64; ++j) amax = std::max(amax, std::fabs(x[size_t(j)]));
    // e4m3 keeps 3 mantissa bits; values far below the tile's max lose more (subnormals).
    EXPECT_NEAR(back[size_t(i)], x[size_t(i)], std::fabs(x[size_t(i)]) / 16 + amax / 448 / 4) << i;
  }
  for (int i = 448; i < 512; ++i) EXPECT_EQ(back[size_t(i)], round_bf16(x[size_t(i)]));
  std::vector<uint8_t> k(132);
  std::vector<float> kb(128);
  fp8_key_encode(x.data(), 128, k.data());
  fp8_key_decode(k.data(), 128, kb.data());
  for (int i = 0; i < 128; ++i) EXPECT_NEAR(kb[size_t(i)], x[size_t(i)], std::fabs(x[size_t(i)]) / 16 + 0.01f);
}

}  // namespace
}  // namespace modelone
