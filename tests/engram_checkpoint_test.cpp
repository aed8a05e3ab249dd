// A tiny Engram checkpoint in the format V4.1 ships (config.json with the text model under
// text_config and the engram_* keys; per Engram layer fp8 table rows with one E8M0 scale per 32
// values, an FP8 wkv with 32 x 32 block scales, bf16 q/k gate scales; the compression map beside
// it), written here on top of the transformers fixture's V4 backbone. It loads, and its logits equal
// those of the same model with the tables stored in fp32; broken maps and tables are errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/blocks/engram.h"
#include "model/blocks/engram_hash.h"
#include "model/io/safetensors.h"
#include "model/io/tensor_table.h"
#include "tests/support.h"

namespace modelone {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kHeadDim = 32, kNgram = 3, kHeads = 4, kPrimeStart = 500, kCVocab = 200;
const std::vector<int64_t> kLayers = {1, 2};

// A 1-D int32 .npy, written by hand (the format: magic, version, header length, dict, data).
void write_npy_i32(const fs::path& p, const std::vector<int32_t>& v) {
  std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (" +
                     std::to_string(v.size()) + ",), }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  const uint16_t hl = uint16_t(dict.size());
  std::ofstream f(p, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&hl), 2);
  f << dict;
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
}

// Writes the checkpoint; fp32_tables stores the dequantized rows as F32 (no scales).
std::string write_checkpoint(const std::string& name, bool fp32_tables,
                             std::vector<int32_t> map = {}, bool release = false) {
  const fs::path src = test::data_dir("hf_v4_tiny"), dst = fs::temp_directory_path() / name;
  fs::remove_all(dst);
  fs::create_directories(dst);
  json text = json::parse(std::ifstream(src / "config.json"));
  const int64_t D = text["hidden_size"], hc = text["hc_mult"], V = text["vocab_size"];
  text["engram_layer_ids"] = kLayers;
  text["engram_max_ngram_size"] = kNgram;
  text["engram_n_heads"] = kHeads;
  text["engram_head_dim"] = kHeadDim;
  text["engram_vocab_size"] = kPrimeStart;
  text["engram_pad_token_id"] = 2;
  text["engram_compressed_vocab_size"] = kCVocab;
  // V4.1 quantizes in 32 x 32 blocks. The backbone stays V4's (model_type deepseek_v4): this
  // checks the Engram format; the V4.1 backbone is v41_parity_test's.
  const json cfg = {{"model_type", "deepseek_v4"},
                    {"quantization_config", {{"weight_block_size", {32, 32}}}},
                    {"text_config", text}};
  std::ofstream(dst / "config.json") << cfg.dump(2);

  std::vector<TensorToWrite> all = test::checkpoint_tensors(Checkpoint::open(src.string()));
  const auto hp = engram_hash_params(kLayers, kNgram, kHeads, kPrimeStart, kCVocab);
  const int64_t dim = (kNgram - 1) * kHeads * kHeadDim, rb = engram_row_bytes(DType::F8_E4M3, kHeadDim);
  for (size_t k = 0; k < kLayers.size(); ++k) {
    const std::string p = "model.layers." + std::to_string(kLayers[k]) + ".engram.";
    const int64_t R = hp[k].rows;
    std::vector<uint8_t> rows(static_cast<size_t>(R * rb));
    synth_engram_rows(77, int64_t(k), DType::F8_E4M3, kHeadDim, 0, R, rows.data());
    std::vector<float> codes, scales, deq(static_cast<size_t>(kHeadDim));
    for (int64_t r = 0; r < R; ++r) {
      const uint8_t* row = rows.data() + r * rb;
      if (fp32_tables) {
        engram_row_to_f32(DType::F8_E4M3, kHeadDim, row, deq.data());
        codes.insert(codes.end(), deq.begin(), deq.end());
        continue;
      }
      for (int64_t i = 0; i < kHeadDim; ++i) codes.push_back(e4m3_to_f32(row[i]));
      for (int64_t b = 0; b < kHeadDim / 32; ++b) scales.push_back(ue8m0_to_f32(row[kHeadDim + b]));
    }
    all.push_back({p + "embed.weight", fp32_tables ? DType::F32 : DType::F8_E4M3, {R, kHeadDim},
                   codes, {}});
    if (!fp32_tables)
      all.push_back({p + "embed.scale", DType::F8_E8M0, {R, kHeadDim / 32}, scales, {}});
    // wkv [(hc + 1) D, dim] in e4m3 with one power-of-two scale per 32 x 32 block.
    const int64_t N = (hc + 1) * D, B = 32;
    std::vector<float> q(static_cast<size_t>(N * dim)), s(static_cast<size_t>((N / B) * (dim / B)));
    for (int64_t br = 0; br < N / B; ++br)
      for (int64_t bc = 0; bc < dim / B; ++bc) {
        const float sc = std::ldexp(1.f, -9 - int(bc % 3));
        s[size_t(br * (dim / B) + bc)] = sc;
        for (int64_t r = br * B; r < (br + 1) * B; ++r)
          for (int64_t c = bc * B; c < (bc + 1) * B; ++c)
            q[size_t(r * dim + c)] = float(int((r * 7 + c * 13 + int64_t(k)) % 41) - 20) * 8.f;
      }
    all.push_back({p + "wkv.weight", DType::F8_E4M3, {N, dim}, q, {}});
    all.push_back({p + "wkv.scale", DType::F8_E8M0, {N / B, dim / B}, s, {}});
    std::vector<float> g(static_cast<size_t>(hc * D));
    for (size_t i = 0; i < g.size(); ++i) g[i] = 1.f + 0.01f * float(int(i % 17) - 8);
    all.push_back({p + "q_weight", DType::BF16, {hc, D}, g, {}});
    all.push_back({p + "k_weight", DType::BF16, {hc, D}, g, {}});
  }
  if (release)  // DeepSeek's spelling: layers.L.engram.embed.weight, embed.weight, ...
    for (TensorToWrite& t : all) t.name = release_name(t.name);
  write_safetensors((dst / "model.safetensors").string(), all);
  if (map.empty())
    for (int64_t i = 0; i < V; ++i) map.push_back(int32_t((i * 37 + 5) % kCVocab));
  write_npy_i32(dst / "engram_compression_map.npy", map);
  return dst.string();
}

std::vector<float> logits(const std::string& dir, bool engram = true) {
  EngineOptions o;
  o.engram.enabled = engram;
  auto m = test::make_model(dir, o);
  std::vector<int32_t> ids;
  for (int i = 0; i < 60; ++i) ids.push_back((i * 53 + 3) % 256);
  PrefillOptions all;
  all.all_logits = true;
  return m->engine->prefill(ids, all);
}

TEST(EngramCheckpoint, ShippedFormatLoadsAndEqualsFp32Tables) {
  const std::string fp8 = write_checkpoint("engram_ck_fp8", false);
  const std::string f32 = write_checkpoint("engram_ck_f32", true);
  auto m = test::make_model(fp8);
  EXPECT_EQ(m->ms.cfg.engram.table_dtype, DType::F8_E4M3);
  EXPECT_EQ(m->engine->engram()->local_bytes(),
            (engram_hash_params(kLayers, kNgram, kHeads, kPrimeStart, kCVocab)[0].rows +
             engram_hash_params(kLayers, kNgram, kHeads, kPrimeStart, kCVocab)[1].rows) *
                (kHeadDim + kHeadDim / 32))
      << "fp8 rows stay 1 byte a value plus a scale byte per 32";
  const auto a = logits(fp8), b = logits(f32);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(test::max_diff(a.data(), b.data(), a.size()).max_abs, 0.f)
      << "the same rows in fp8 + scales and in fp32 must give the same logits";
  const auto off = logits(fp8, false);
  EXPECT_GT(test::max_diff(a.data(), off.data(), a.size()).max_abs, 1e-3f) << "Engram is a no-op";
}

TEST(EngramCheckpoint, ReleaseNamesLoadTheSameModel) {
  const auto a = logits(write_checkpoint("engram_ck_tfnames", false));
  const auto b = logits(write_checkpoint("engram_ck_relnames", false, {}, true));
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(test::max_diff(a.data(), b.data(), a.size()).max_abs, 0.f);
}

TEST(EngramCheckpoint, BadMapsAndTables) {
  const std::string short_map = write_checkpoint("engram_ck_short", false, std::vector<int32_t>(100, 1));
  std::string e = test::error_of([&] { test::make_model(short_map); });
  EXPECT_NE(e.find("has 100 entries for a vocabulary of 256"), std::string::npos) << e;
  std::vector<int32_t> big(256, 3);
  big[17] = int32_t(kCVocab);
  const std::string bad_id = write_checkpoint("engram_ck_badid", false, big);
  e = test::error_of([&] { test::make_model(bad_id); });
  EXPECT_NE(e.find("token 17 maps to 200, outside the compressed vocabulary [0, 200)"),
            std::string::npos) << e;
  // Without the map file: an error that says how to make one, and --engram off still runs.
  fs::remove(fs::path(short_map) / "engram_compression_map.npy");
  e = test::error_of([&] { test::make_model(short_map); });
  EXPECT_NE(e.find("engram_compression_map.npy"), std::string::npos) << e;
  EXPECT_FALSE(logits(short_map, false).empty());
}

}  // namespace
}  // namespace modelone
