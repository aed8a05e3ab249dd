// safetensors reading and the checks a bad checkpoint must fail with.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/base/check.h"
#include "model/io/safetensors.h"
#include "model/io/tensor_table.h"
#include "model/io/model_weights.h"
#include "tests/support.h"

namespace modelone {
namespace {

using test::error_of;
using test::load_error;

namespace fs = std::filesystem;

fs::path tmp(const std::string& name) { return fs::temp_directory_path() / name; }

TEST(Safetensors, RoundTripAndDtypes) {
  const auto p = tmp("rt.safetensors").string();
  write_safetensors(p, {{"a", DType::BF16, {2, 3}, {1, 2, 3, 4, 5, 6}, {}},
                        {"b", DType::I64, {2}, {}, {7, -1}},
                        {"c", DType::F8_E4M3, {1, 2}, {0.5f, -448.f}, {}}});
  Checkpoint ck = Checkpoint::open(p);
  EXPECT_EQ(ck.get("a").to_f32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ck.get("b").at_i64(1), -1);
  EXPECT_EQ(ck.get("c").to_f32(), (std::vector<float>{0.5f, -448.f}));
  EXPECT_NE(error_of([&] { ck.get("zzz"); }).find("'zzz'"), std::string::npos);
}

// Tensors packed after an odd-sized one start at odd offsets: they are handed out aligned for
// their type (reading them in place was undefined behaviour, found by UBSan), with their values.
TEST(Safetensors, MisalignedTensorsAreAligned) {
  const auto p = tmp("odd.safetensors").string();
  write_safetensors(p, {{"a_odd", DType::F8_E4M3, {1, 3}, {0.5f, 1.f, 2.f}, {}},
                        {"b_bf16", DType::BF16, {3}, {1, 2, 3}, {}},
                        {"c_f32", DType::F32, {3}, {4, 5, 6}, {}},
                        {"d_odd", DType::F8_E4M3, {1}, {1.f}, {}},
                        {"e_i64", DType::I64, {2}, {}, {7, -1}}});
  Checkpoint ck = Checkpoint::open(p);
  for (const char* n : {"b_bf16", "c_f32", "e_i64"}) {
    const Weight w = ck.get(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data) % dtype_size(w.dtype), 0u) << n;
  }
  EXPECT_EQ(ck.get("b_bf16").to_f32(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(ck.get("c_f32").to_f32(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(ck.get("e_i64").at_i64(1), -1);
}

TEST(Safetensors, TruncatedAndCorruptFilesAreNamed) {
  const auto good = tmp("good.safetensors").string();
  write_safetensors(good, {{"a", DType::F32, {64}, std::vector<float>(64, 1.f), {}}});
  std::string bytes;
  {
    std::ifstream f(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const auto cut = tmp("cut.safetensors").string();
  std::ofstream(cut, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() - 10));
  std::string e = error_of([&] { Checkpoint::open(cut); });
  EXPECT_NE(e.find("cut.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  const auto tiny = tmp("tiny.safetensors").string();
  std::ofstream(tiny, std::ios::binary).write("abc", 3);
  EXPECT_NE(error_of([&] { Checkpoint::open(tiny); }).find("truncated"), std::string::npos);

  std::string garbled = bytes;
  garbled[12] = '#';  // inside the JSON header
  const auto bad = tmp("bad.safetensors").string();
  std::ofstream(bad, std::ios::binary).write(garbled.data(), std::streamsize(garbled.size()));
  e = error_of([&] { Checkpoint::open(bad); });
  EXPECT_NE(e.find("corrupt"), std::string::npos) << e;

  std::string huge = bytes;
  huge[7] = 0x7f;  // header length far past the end
  const auto hl = tmp("hl.safetensors").string();
  std::ofstream(hl, std::ios::binary).write(huge.data(), std::streamsize(huge.size()));
  EXPECT_NE(error_of([&] { Checkpoint::open(hl); }).find("exceeds"), std::string::npos);
}

// A copy of the fixture with one tensor replaced.
std::string fixture_variant(const std::string& name, const TensorToWrite& replacement,
                            bool drop = false) {
  const fs::path src = test::data_dir("hf_v4_tiny"), dst = tmp(name);
  fs::remove_all(dst);
  fs::create_directories(dst);
  fs::copy_file(src / "config.json", dst / "config.json");
  std::vector<TensorToWrite> all;
  for (TensorToWrite& t : test::checkpoint_tensors(Checkpoint::open(src.string()))) {
    if (t.name != replacement.name) all.push_back(std::move(t));
    else if (!drop) all.push_back(replacement);
  }
  write_safetensors((dst / "model.safetensors").string(), all);
  return dst.string();
}


TEST(Checkpoint, MissingWrongShapeWrongDtype) {
  const std::string name = "model.layers.1.attn.wq_b.weight";
  auto d1 = fixture_variant("ck_missing", {name, DType::BF16, {1}, {0.f}, {}}, /*drop=*/true);
  std::string e = load_error(d1);
  EXPECT_NE(e.find(name), std::string::npos) << e;
  EXPECT_NE(e.find("[256, 64]"), std::string::npos) << e;

  auto d2 = fixture_variant("ck_shape", {name, DType::BF16, {256, 32}, std::vector<float>(256 * 32), {}});
  e = load_error(d2);
  EXPECT_NE(e.find("has shape [256, 32] but the config (config.json and any --set) gives [256, 64]"), std::string::npos) << e;

  auto d3 = fixture_variant("ck_dtype", {name, DType::I64, {256, 64}, {}, std::vector<int64_t>(256 * 64)});
  e = load_error(d3);
  EXPECT_NE(e.find("dtype I64"), std::string::npos) << e;

  const std::string t2e = "model.layers.0.ffn.gate.tid2eid";
  auto d4 = fixture_variant("ck_tid2eid", {t2e, DType::I64, {256, 2}, {}, std::vector<int64_t>(512, 9)});
  e = load_error(d4);
  EXPECT_NE(e.find("names expert 9"), std::string::npos) << e;
  auto d5 = fixture_variant("ck_tid2eid_twice", {t2e, DType::I64, {256, 2}, {}, std::vector<int64_t>(512, 3)});
  e = load_error(d5);
  EXPECT_NE(e.find("row 0 names expert 3 twice"), std::string::npos) << e;
}

// Crafted headers: each is refused with one line naming the tensor and what is wrong, never a
// crash, an overflow or a silent load.
TEST(Checkpoint, CraftedHeadersAreRefused) {
  const fs::path d = fs::temp_directory_path() / "modelone_crafted";
  fs::create_directories(d);
  auto open_with = [&](const std::string& header, size_t data_bytes) {
    const fs::path f = d / "x.safetensors";
    std::string h = header;
    h.append((8 - h.size() % 8) % 8, ' ');
    const uint64_t n = h.size();
    std::ofstream o(f, std::ios::binary);
    o.write(reinterpret_cast<const char*>(&n), 8);
    o << h << std::string(data_bytes, '\0');
    o.close();
    return error_of([&] { Checkpoint::open(f.string()); });
  };
  EXPECT_EQ(open_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8), "");
  EXPECT_NE(open_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12)
                .find("tensors 'a' and 'b' overlap in the data section"), std::string::npos);
  EXPECT_NE(open_with(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8)
                .find("tensor 'a': shape [4294967296]... has more elements than the file has bytes"),
            std::string::npos);
  EXPECT_NE(open_with(R"({"a": {"dtype": "U8", "shape": [4, 4294967296, 4294967296], "data_offsets": [0, 8]}})", 8)
                .find("has more elements than the file has bytes"), std::string::npos);
  EXPECT_NE(open_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8)
                .find("tensor 'a': data_offsets [8, 0) are reversed"), std::string::npos);
  EXPECT_NE(open_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8)
                .find("tensor 'a': bad data_offsets"), std::string::npos);
  EXPECT_NE(open_with(R"({"a": {"dtype": "F32", "shape": 7, "data_offsets": [0, 8]}})", 8)
                .find("tensor 'a': bad shape"), std::string::npos);
  // An I64 tensor at an offset that is not a multiple of 8 reads correctly (no misaligned load).
  {
    const fs::path f = d / "i64.safetensors";
    std::string h = R"({"pad": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "t": {"dtype": "I64", "shape": [2], "data_offsets": [4, 20]}})";
    h.append((8 - h.size() % 8) % 8, ' ');
    const uint64_t n = h.size();
    const int64_t vals[2] = {-3, 1234567890123};
    std::ofstream o(f, std::ios::binary);
    o.write(reinterpret_cast<const char*>(&n), 8);
    o << h << std::string(4, '\0');
    o.write(reinterpret_cast<const char*>(vals), 16);
    o.close();
    Checkpoint ck = Checkpoint::open(f.string());
    const Weight w = ck.get("t");
    EXPECT_EQ(w.at_i64(0), -3);
    EXPECT_EQ(w.at_i64(1), 1234567890123);
  }
}

TEST(Checkpoint, Fp8BlockScaledWeights) {
  // Quantize one projection to e4m3 with 32x32 block scales; the loader must find the scale
  // and dequantize back to within e4m3 precision.
  const fs::path src = test::data_dir("hf_v4_tiny");
  Checkpoint ck = Checkpoint::open(src.string());
  const std::string name = "model.layers.1.attn.wq_b.weight";
  const Weight w = ck.get(name);
  const auto v = w.to_f32();
  const int64_t R = w.shape[0], C = w.shape[1], B = 32;
  std::vector<float> q(v.size()), scale(static_cast<size_t>((R / B) * (C / B)));
  for (int64_t br = 0; br < R / B; ++br)
    for (int64_t bc = 0; bc < C / B; ++bc) {
      float amax = 0;
      for (int64_t r = br * B; r < (br + 1) * B; ++r)
        for (int64_t c = bc * B; c < (bc + 1) * B; ++c) amax = std::max(amax, std::fabs(v[size_t(r * C + c)]));
      const float s = amax / 448.f;
      scale[size_t(br * (C / B) + bc)] = s;
      for (int64_t r = br * B; r < (br + 1) * B; ++r)
        for (int64_t c = bc * B; c < (bc + 1) * B; ++c) q[size_t(r * C + c)] = v[size_t(r * C + c)] / s;
    }
  const auto p = tmp("fp8.safetensors").string();
  write_safetensors(p, {{name, DType::F8_E4M3, {R, C}, q, {}},
                        {"model.layers.1.attn.wq_b.scale", DType::F32, {R / B, C / B}, scale, {}}});
  auto src8 = checkpoint_source(std::make_shared<const Checkpoint>(Checkpoint::open(p)), B, B);
  const Weight w8 = src8->load({name, {R, C}, {}, false});
  const auto back = w8.to_f32();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(back[i], v[i], std::fabs(v[i]) / 16 + 1e-6) << i;
}

}  // namespace
}  // namespace modelone
