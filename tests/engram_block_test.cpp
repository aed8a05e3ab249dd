// Engram's block and store pieces on hand-computed cases: one fp8 row dequantized, the gate of
// each stream (positive, zero and negative dot), the row-range map from a global row to its
// owner, the compression map's checks, and the config's check of Engram layer ids.
#include <gtest/gtest.h>

#include <cmath>

#include "model/io/model_source.h"
#include "dist/engram_store.h"
#include "model/base/check.h"
#include "model/blocks/engram.h"
#include "tests/support.h"

namespace modelone {
namespace {

TEST(EngramBlock, Fp8RowDequantized) {
  // 64 values: two blocks of 32 with scales 2^0 (code 127) and 2^3 (code 130).
  std::vector<uint8_t> row(64 + 2, 0);
  row[0] = 0x38;   // e4m3 1.0
  row[1] = 0x40;   // 2.0
  row[2] = 0xC0;   // -2.0
  row[3] = 0x01;   // smallest subnormal 2^-9
  row[32] = 0x3C;  // 1.5
  row[33] = 0xB8;  // -1.0
  row[64] = 127;
  row[65] = 130;
  EXPECT_EQ(engram_row_bytes(DType::F8_E4M3, 64), 66);
  std::vector<float> out(64);
  engram_row_to_f32(DType::F8_E4M3, 64, row.data(), out.data());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(out[2], -2.0f);
  EXPECT_EQ(out[3], std::ldexp(1.0f, -9));
  EXPECT_EQ(out[4], 0.0f);
  EXPECT_EQ(out[32], 12.0f);  // 1.5 * 8
  EXPECT_EQ(out[33], -8.0f);
}

TEST(EngramBlock, GateOfEachStream) {
  // D = 4, hc = 3, one column of head_dim 2 (memory vector [2]); e = [1, 0] picks wkv's first
  // column: keys of all streams = 1, value = [0.5, 1, 1.5, 2]. q, k scales = 1.
  ModelConfig cfg;
  cfg.hidden_size = 4;
  cfg.hc_mult = 3;
  cfg.rms_norm_eps = 1e-6;
  cfg.engram.layers = {0};
  cfg.engram.max_ngram = 2;
  cfg.engram.n_heads = 1;
  cfg.engram.head_dim = 2;
  std::vector<float> wkv(16 * 2, 0.f);
  for (int r = 0; r < 12; ++r) wkv[size_t(r * 2)] = 1.f;
  for (int i = 0; i < 4; ++i) wkv[size_t((12 + i) * 2)] = 0.5f * float(i + 1);
  EngramWeights w;
  w.wkv = make_weight("wkv", DType::F32, {16, 2}, wkv);
  w.q_weight = make_weight("q", DType::F32, {3, 4}, std::vector<float>(12, 1.f));
  w.k_weight = make_weight("k", DType::F32, {3, 4}, std::vector<float>(12, 1.f));
  // Streams: h = 1 (dot = 4 / 2 / (1 + eps) > 0), alternating signs (dot = 0), h = -2 (dot < 0).
  std::vector<float> x = {1, 1, 1, 1, 1, -1, 1, -1, -2, -2, -2, -2};
  const std::vector<float> e = {1, 0};
  std::vector<float> kv;
  engram_forward(cfg, w, e.data(), 1, x.data(), &kv);
  // g = sigmoid(sign(dot) * sqrt(|dot|)): dot = 1.999998 -> 0.80442957; 0 -> 0.5;
  // dot = -8 / sqrt(4 + eps) / sqrt(1 + eps) / 2 = -1.99999875 -> 0.19557039.
  const double g[3] = {0.8044295712631614, 0.5, 0.19557038702042137};
  const float h0[3][4] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {-2, -2, -2, -2}};
  for (int m = 0; m < 3; ++m)
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(x[size_t(m * 4 + i)], h0[m][i] + g[m] * 0.5 * (i + 1), 1e-6)
          << "stream " << m << " value " << i;
}

TEST(EngramStore, RowRangesMapEveryRowToOneOwner) {
  const RowRanges r(10, 3);  // 4 + 3 + 3
  EXPECT_EQ(r.begin(0), 0);
  EXPECT_EQ(r.begin(1), 4);
  EXPECT_EQ(r.begin(2), 7);
  EXPECT_EQ(r.count(0), 4);
  EXPECT_EQ(r.count(2), 3);
  const int owners[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
  for (int64_t row = 0; row < 10; ++row) EXPECT_EQ(r.owner(row), owners[row]) << row;
  const RowRanges few(2, 4);  // fewer rows than owners: the last ones hold none
  EXPECT_EQ(few.owner(0), 0);
  EXPECT_EQ(few.owner(1), 1);
  EXPECT_EQ(few.count(3), 0);
}

TEST(EngramStore, RowCacheKeepsTheMostRecentRows) {
  RowCache c(2, 4);
  const uint8_t a[4] = {1, 1, 1, 1}, b[4] = {2, 2, 2, 2}, d[4] = {3, 3, 3, 3};
  EXPECT_EQ(c.find(10), nullptr);
  c.insert(10, a);
  c.insert(20, b);
  ASSERT_NE(c.find(10), nullptr);  // 10 is now more recent than 20
  EXPECT_EQ(c.find(10)[0], 1);
  c.insert(30, d);                 // full: 20, the least recent, goes
  EXPECT_EQ(c.find(20), nullptr);
  ASSERT_NE(c.find(30), nullptr);
  EXPECT_EQ(c.find(30)[3], 3);
  ASSERT_NE(c.find(10), nullptr);
  EXPECT_EQ(c.find(10)[2], 1);
}

TEST(EngramStore, CompressionMapChecked) {
  ModelConfig cfg;
  cfg.vocab_size = 4;
  cfg.engram.compressed_vocab = 3;
  EXPECT_NO_THROW(check_compression_map({0, 2, 1, 2}, cfg, "map"));
  EXPECT_NE(test::error_of([&] { check_compression_map({0, 1, 2}, cfg, "map"); })
                .find("has 3 entries for a vocabulary of 4"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { check_compression_map({0, 1, 3, 0}, cfg, "map"); })
                .find("sends token 2 to 3, outside the compressed vocabulary [0, 3)"),
            std::string::npos);
}

TEST(EngramConfig, LayerIdsChecked) {
  EXPECT_NE(test::error_of([] { resolve_model("tiny-engram", {"engram_layer_ids=1,6"}); })
                .find("engram_layer_ids: layer 6 is outside [0, 6)"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { resolve_model("tiny-engram", {"engram_layer_ids=3,1"}); })
                .find("increasing"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { resolve_model("tiny-engram", {"engram_num_embeddings=5,5"}); })
                .find("engram_num_embeddings[0] is 5"),
            std::string::npos);
}

}  // namespace
}  // namespace modelone
