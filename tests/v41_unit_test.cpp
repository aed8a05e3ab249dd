// DeepSeek-V4.1's new pieces against values worked out by hand: the ratio-2 and ratio-1
// compressors, the candidate blocks (the newest pinned, ties to the lower block, the distributed
// merge equal to one rank's choice), FP8 / FP4 fake quantization (ties to even, both clamps of
// each scale), and the lagged mHC collapse.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/blocks/compressor.h"
#include "model/kernels/fake_quant.h"
#include "model/blocks/indexer_v41.h"
#include "model/cache/kv_v41.h"
#include "model/blocks/mhc.h"
#include "model/io/weight_tensor.h"

namespace modelone {
namespace {

CompressorWeights unit_norm(int64_t W) {
  CompressorWeights w;
  w.norm = make_weight("norm", DType::F32, {W}, std::vector<float>(size_t(W), 1.f));
  return w;
}

// Ratio 2, two channels: rows (kv, gate) = ([1, 2], [0, ln 3]) then ([3, 4], [0, 0]). Channel 0
// pools with (1/2, 1/2): 2; channel 1 with (3/4, 1/4): 2.5. RMSNorm: / sqrt((4 + 6.25) / 2).
TEST(V41Compressor, RatioTwoPoolsPairsBySoftmaxGate) {
  CompressorState st = compressor_state(2, 2, false);
  const CompressorWeights w = unit_norm(2);
  const float kv[] = {1, 2, 3, 4}, gate[] = {0, std::log(3.f), 0, 0};
  std::vector<float> lat;
  std::vector<int32_t> idx;
  EXPECT_EQ(compressor_feed_latents(st, w, 1e-20f, kv, gate, 1, &lat, &idx), 0) << "group open";
  ASSERT_EQ(compressor_feed_latents(st, w, 1e-20f, kv + 2, gate + 2, 1, &lat, &idx), 1);
  const float r = std::sqrt((4.f + 6.25f) / 2.f);
  EXPECT_EQ(idx[0], 0);
  EXPECT_NEAR(lat[0], 2.f / r, 1e-6f);
  EXPECT_NEAR(lat[1], 2.5f / r, 1e-6f);
}

// Ratio 1 has no gate: every row is an entry, norm(wkv x) ([3, 4] -> [3, 4] / sqrt(12.5)).
TEST(V41Compressor, RatioOneIsOneEntryPerToken) {
  CompressorState st = compressor_state(1, 2, false);
  const CompressorWeights w = unit_norm(2);
  const float kv[] = {3, 4, 0, 2}, gate[] = {0, 0, 0, 0};
  std::vector<float> lat;
  std::vector<int32_t> idx;
  ASSERT_EQ(compressor_feed_latents(st, w, 1e-20f, kv, gate, 2, &lat, &idx), 2);
  EXPECT_EQ(idx, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(lat[0], 3.f / std::sqrt(12.5f), 1e-6f);
  EXPECT_NEAR(lat[1], 4.f / std::sqrt(12.5f), 1e-6f);
  EXPECT_NEAR(lat[2], 0.f, 1e-6f);
  EXPECT_NEAR(lat[3], std::sqrt(2.f), 1e-6f);
}

// Blocks 0..4 scoring 5, 1, 7, 3, 0.5; block 4 holds the newest entry. Three kept: the pinned
// 4, then 2 and 0. Ties go to the lower block; fewer candidates than k keep them all.
TEST(V41Candidates, NewestBlockPinnedThenBest) {
  const float b[] = {5, 1, 7, 3, 0.5f};
  int32_t ids[8];
  ASSERT_EQ(pick_blocks(b, 5, 4, 3, ids), 3);
  EXPECT_EQ(std::vector<int32_t>(ids, ids + 3), (std::vector<int32_t>{0, 2, 4}));
  const float tie[] = {2, 5, 5, 5, 1};
  ASSERT_EQ(pick_blocks(tie, 5, 0, 3, ids), 3);
  EXPECT_EQ(std::vector<int32_t>(ids, ids + 3), (std::vector<int32_t>{0, 1, 2}));
  const float few[] = {1, -INFINITY, -INFINITY};  // nothing visible past block 0
  ASSERT_EQ(pick_blocks(few, 3, 0, 3, ids), 1);
  EXPECT_EQ(ids[0], 0);
}

// The decode form: each rank sends its best partial block maxima; the merge gives the blocks of
// the full maxima. Entries 0..17 visible (ratio 1, position 17), blocks of 4, keep 3.
TEST(V41Candidates, RankPartialsMergeToTheSameBlocks) {
  ModelConfig cfg;
  cfg.shared.candidate_block_size = 4;
  cfg.shared.candidate_topk_blocks = 3;
  const float score[18] = {0, 9, 1, 1, 2, 2, 2, 2, 3, 0, 0, 8, 1, 1, 1, 1, 0, 0};
  // Round-robin over 3 ranks: each keeps its top-3 partial block maxima.
  std::vector<Candidate> all;
  for (int r = 0; r < 3; ++r) {
    std::vector<Candidate> part;
    for (int s = r; s < 18; s += 3) {
      const int32_t blk = s / 4;
      auto it = std::find_if(part.begin(), part.end(), [&](const Candidate& c) { return c.index == blk; });
      if (it == part.end()) part.push_back({score[s], blk});
      else it->score = std::max(it->score, score[s]);
    }
    std::sort(part.begin(), part.end(), [](const Candidate& a, const Candidate& b) {
      return a.score > b.score || (a.score == b.score && a.index < b.index);
    });
    part.resize(std::min<size_t>(3, part.size()));
    all.insert(all.end(), part.begin(), part.end());
  }
  // Full maxima 9, 2, 8, 1, 0 with block 4 (entries 16, 17) the newest: {0, 2, 4}.
  EXPECT_EQ(merge_blocks(cfg, 17, 1, all), (std::vector<int32_t>{0, 2, 4}));
}

TEST(V41FakeQuant, E2m1TiesToEven) {
  const float in[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.f, -0.25f, -0.75f, 5.9f, 0.3f};
  const float want[] = {0.f, 1.f, 1.f, 2.f, 2.f, 4.f, 4.f, -0.f, -1.f, 6.f, 0.5f};
  for (size_t i = 0; i < std::size(in); ++i) EXPECT_EQ(e2m1_round(in[i]), want[i]) << in[i];
  EXPECT_EQ(pow2_ceil(3.f), 4.f);
  EXPECT_EQ(pow2_ceil(0.5f), 0.5f);
}

// A block of 32 whose largest value is 3: scale 2^ceil(log2(3 / 6)) = 0.5; 1.3 / 0.5 = 2.6
// rounds to 3, giving 1.5. All zeros: the scale's lower clamp keeps them 0.
TEST(V41FakeQuant, Fp4PowerOfTwoScale) {
  std::vector<float> x(32, 0.f);
  x[0] = 3.f;
  x[1] = 1.3f;
  x[2] = -0.2f;  // 0.4 -> 0.5 -> 0.25
  fake_quant_fp4_ue8m0(x.data(), 32, 32);
  EXPECT_EQ(x[0], 3.f);
  EXPECT_EQ(x[1], 1.5f);
  EXPECT_EQ(x[2], -0.25f);
  std::vector<float> z(32, 0.f);
  fake_quant_fp4_ue8m0(z.data(), 32, 32);
  for (float v : z) EXPECT_EQ(v, 0.f);
}

// e4m3 scales of blocks of 16: amax 6.375 gives 6.375 / 6 = 1.0625, a tie between the e4m3
// values 1 and 1.125, to even: 1. Then 6.375 / 1 passes 6 and is clamped: 6. A tiny block takes
// the smallest scale, 2^-9, and rounds to 0.
TEST(V41FakeQuant, Fp4E4m3ScaleAndBothClamps) {
  std::vector<float> x(16, 0.f);
  x[0] = 6.375f;
  x[1] = -2.6f;  // -2.6 / 1 -> -3
  fake_quant_fp4_e4m3(x.data(), 16, 16);
  EXPECT_EQ(x[0], 6.f);
  EXPECT_EQ(x[1], -3.f);
  std::vector<float> t(16, 1e-6f);
  fake_quant_fp4_e4m3(t.data(), 16, 16);
  for (float v : t) EXPECT_EQ(v, 0.f);
}

// FP8 blocks of 32 with amax 1: scale 2^ceil(log2(1 / 448)) = 2^-8; 0.3 * 256 = 76.8 sits between
// the e4m3 values 72 and 80: 80, giving 0.3125. The RoPE tail is rounded like the rest.
TEST(V41FakeQuant, Fp8WindowBlocks) {
  std::vector<float> x(64, 0.f);
  x[0] = 1.f;
  x[1] = 0.3f;
  x[40] = 1e-12f;  // a block of near-zeros: the 1e-4 clamp sets its scale, the value goes to 0
  fake_quant_fp8_ue8m0(x.data(), 64, 32);
  EXPECT_EQ(x[0], 1.f);
  EXPECT_EQ(x[1], 0.3125f);
  EXPECT_EQ(x[40], 0.f);
}

// The fp4 cache (V4.1's trained form): 528 / 288 / 68 bytes for 512-dim window rows and entries
// and 128-dim keys; a raw row decodes to its fake quantization, and a row that was already rounded
// decodes to itself exactly, also where blocks are small enough for subnormal e4m3 scales.
TEST(V41Cache, RowsHoldTheFakeQuantizationExactly) {
  EXPECT_EQ(v41_row_bytes(V41Row::Window, 512), 528);
  EXPECT_EQ(v41_row_bytes(V41Row::Entry, 512), 288);
  EXPECT_EQ(v41_row_bytes(V41Row::Key, 128), 68);
  std::mt19937 g(5);
  std::normal_distribution<float> n;
  for (V41Row kind : {V41Row::Window, V41Row::Entry, V41Row::Key}) {
    const int64_t W = kind == V41Row::Key ? 128 : 512;
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> x(static_cast<size_t>(W));
      for (int64_t i = 0; i < W; ++i) x[size_t(i)] = n(g) * (i % 64 < 16 ? 0.004f * float(trial % 25) : 1.f);
      std::vector<float> fq = x;
      if (kind == V41Row::Window) fake_quant_fp8_ue8m0(fq.data(), W, 32);
      if (kind == V41Row::Entry) fake_quant_fp4_e4m3(fq.data(), W, 16);
      if (kind == V41Row::Key) fake_quant_fp4_ue8m0(fq.data(), W, 32);
      std::vector<uint8_t> row(static_cast<size_t>(v41_row_bytes(kind, W)));
      std::vector<float> back(static_cast<size_t>(W)), again(static_cast<size_t>(W));
      v41_row_encode(kind, x.data(), W, row.data());
      v41_row_decode(kind, row.data(), W, back.data());
      v41_row_encode(kind, fq.data(), W, row.data());
      v41_row_decode(kind, row.data(), W, again.data());
      std::vector<uint16_t> b16(static_cast<size_t>(W));
      v41_row_decode_bf16(kind, row.data(), W, b16.data());
      for (int64_t i = 0; i < W; ++i) {
        ASSERT_EQ(back[size_t(i)], fq[size_t(i)]) << "raw row, kind " << int(kind) << ", value " << i;
        ASSERT_EQ(again[size_t(i)], fq[size_t(i)]) << "rounded row, kind " << int(kind) << ", value " << i;
        ASSERT_EQ(bf16_to_f32(b16[size_t(i)]), fq[size_t(i)]) << "bf16 decode, kind " << int(kind);
      }
    }
  }
}

// Two streams of two values collapsed with a given pre-mix: 0.25 [1, 2] + 0.75 [3, 4].
TEST(V41Mhc, CollapseWithTheGivenPreMix) {
  const float x[] = {1, 2, 3, 4}, pre[] = {0.25f, 0.75f};
  float y[2];
  hc_collapse(x, 1, 2, 2, pre, y);
  EXPECT_FLOAT_EQ(y[0], 2.5f);
  EXPECT_FLOAT_EQ(y[1], 3.5f);
  const float one_hot[] = {1, 0};  // V4.1's first collapse: stream 0
  hc_collapse(x, 1, 2, 2, one_hot, y);
  EXPECT_EQ(y[0], 1.f);
  EXPECT_EQ(y[1], 2.f);
}

}  // namespace
}  // namespace modelone
