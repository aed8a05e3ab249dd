// DeepSeek's release format against its exactly-dequantized fp32 twin, in one MPI job (ctest runs
// it at 1-4 ranks, so experts spread over up to 4): the transformers fixture converted to release
// names, FP8 projections with E8M0 block scales at block 128 (short edge blocks) and at 32, FP4
// routed experts packed two codes a byte with a scale per 32, and a transformers-named FP8 copy.
// Logits agree within 1e-5 and greedy tokens are equal. Bad files are refused with the name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "comm/comm.h"
#include "model/io/safetensors.h"
#include "model/io/tensor_table.h"
#include "model/io/weight_sizes.h"
#include "tests/support.h"

namespace modelone {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
bool is_fp8(const std::string& n) {  // the projections the release stores in FP8
  for (const char* p : {".attn.wq_a.weight", ".attn.wq_b.weight", ".attn.wkv.weight",
                        ".attn.wo_a.weight", ".attn.wo_b.weight", ".indexer.wq_b.weight",
                        ".shared_experts.w1.weight", ".shared_experts.w2.weight",
                        ".shared_experts.w3.weight"})
    if (ends_with(n, p)) return true;
  return false;
}
bool is_expert(const std::string& n) { return n.find(".ffn.experts.") != std::string::npos; }

float pow2_at_least(float a) { return a > 0 ? std::ldexp(1.f, int(std::ceil(std::log2(a)))) : 1.f; }

// e4m3 codes (as floats) and [ceil(R/B), ceil(C/B)] power-of-two scales; v becomes the exact
// dequantized values.
void quant_fp8(std::vector<float>& v, int64_t R, int64_t C, int64_t B, std::vector<float>* codes,
               std::vector<float>* scales) {
  const int64_t nr = (R + B - 1) / B, nc = (C + B - 1) / B;
  codes->resize(v.size());
  scales->assign(size_t(nr * nc), 0.f);
  for (int64_t br = 0; br < nr; ++br)
    for (int64_t bc = 0; bc < nc; ++bc) {
      float amax = 0;
      for (int64_t r = br * B; r < std::min(R, (br + 1) * B); ++r)
        for (int64_t c = bc * B; c < std::min(C, (bc + 1) * B); ++c)
          amax = std::max(amax, std::fabs(v[size_t(r * C + c)]));
      const float s = pow2_at_least(amax / 448.f);
      (*scales)[size_t(br * nc + bc)] = s;
      for (int64_t r = br * B; r < std::min(R, (br + 1) * B); ++r)
        for (int64_t c = bc * B; c < std::min(C, (bc + 1) * B); ++c) {
          float& x = v[size_t(r * C + c)];
          const float code = e4m3_to_f32(f32_to_e4m3(x / s));
          (*codes)[size_t(r * C + c)] = code;
          x = code * s;
        }
    }
}

// FP4: bytes [R, C/2] (as int8 values) and scales [R, C/32]; v becomes the dequantized values.
void quant_fp4(std::vector<float>& v, int64_t R, int64_t C, std::vector<float>* bytes,
               std::vector<float>* scales) {
  bytes->assign(size_t(R * C / 2), 0.f);
  scales->assign(size_t(R * C / 32), 0.f);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t g = 0; g < C / 32; ++g) {
      float amax = 0;
      for (int64_t c = g * 32; c < g * 32 + 32; ++c) amax = std::max(amax, std::fabs(v[size_t(r * C + c)]));
      const float s = pow2_at_least(amax / 6.f);
      (*scales)[size_t(r * (C / 32) + g)] = s;
      for (int64_t c = g * 32; c < g * 32 + 32; ++c) {
        float& x = v[size_t(r * C + c)];
        uint8_t best = 0;
        for (uint8_t code = 0; code < 16; ++code)
          if (std::fabs(e2m1_to_f32(code) * s - x) < std::fabs(e2m1_to_f32(best) * s - x)) best = code;
        x = e2m1_to_f32(best) * s;
        const size_t at = size_t((r * C + c) / 2);
        uint8_t b = uint8_t(int8_t((*bytes)[at]));
        b = (c & 1) ? uint8_t((b & 0x0f) | (best << 4)) : uint8_t((b & 0xf0) | best);
        (*bytes)[at] = float(int8_t(b));
      }
    }
}

// Writes DIR (quantized, release or transformers names) and DIR_twin (fp32, transformers names).
std::string convert(const std::string& name, int64_t block, bool release, bool fp4) {
  const fs::path src = test::data_dir("hf_v4_tiny"), dst = fs::temp_directory_path() / name;
  const fs::path twin = dst.string() + "_twin";
  for (const fs::path& d : {dst, twin}) {
    fs::remove_all(d);
    fs::create_directories(d);
    fs::copy_file(src / "config.json", d / "config.json");
  }
  json cfg = json::parse(std::ifstream(src / "config.json"));
  cfg["quantization_config"] = {{"weight_block_size", {block, block}}};
  std::ofstream(dst / "config.json") << cfg.dump(2);
  std::vector<TensorToWrite> q, t;
  for (TensorToWrite& w : test::checkpoint_tensors(Checkpoint::open(src.string()))) {
    const std::string out = release ? release_name(w.name) : w.name;
    const int64_t R = w.shape.size() == 2 ? w.shape[0] : 0, C = w.shape.size() == 2 ? w.shape[1] : 0;
    const std::string base = out.substr(0, out.size() - 7);  // without ".weight"
    std::vector<float> a, b;
    if (fp4 && is_expert(w.name)) {
      quant_fp4(w.values, R, C, &a, &b);
      q.push_back({out, DType::I8, {R, C / 2}, a, {}});
      q.push_back({base + ".scale", DType::F8_E8M0, {R, C / 32}, b, {}});
    } else if (is_fp8(w.name) || (!fp4 && is_expert(w.name))) {
      quant_fp8(w.values, R, C, block, &a, &b);
      q.push_back({out, DType::F8_E4M3, w.shape, a, {}});
      q.push_back({base + ".scale", DType::F8_E8M0, {(R + block - 1) / block, (C + block - 1) / block}, b, {}});
    } else {
      TensorToWrite c = w;
      c.name = out;
      q.push_back(std::move(c));
    }
    if (w.dtype != DType::I64) w.dtype = DType::F32;
    t.push_back(std::move(w));
  }
  write_safetensors((dst / "model.safetensors").string(), q);
  write_safetensors((twin / "model.safetensors").string(), t);
  return dst.string();
}

// Rank 0 writes, everyone reads.
std::string converted(const std::string& name, int64_t block, bool release, bool fp4) {
  const comm::Comm w = comm::Comm::world();
  const std::string dir = (fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
  std::string path = dir;
  if (w.rank() == 0) convert(fs::path(dir).filename().string(), block, release, fp4);
  int64_t n = int64_t(path.size());
  w.bcast(&n, 1, 0);
  path.resize(size_t(n));
  w.bcast(path.data(), n, 0);
  return path;
}


void expect_equal_to_twin(const std::string& dir) {
  SCOPED_TRACE(dir);
  auto q = test::make_model(dir), t = test::make_model(dir + "_twin");
  std::vector<int32_t> ids;
  for (int i = 0; i < 45; ++i) ids.push_back((i * 71 + 9) % 256);
  PrefillOptions all;
  all.all_logits = true;
  const auto a = q->engine->prefill(ids, all), b = t->engine->prefill(ids, all);
  if (q->grid.cp_comm.rank() == 0) {
    ASSERT_EQ(a.size(), b.size());
    EXPECT_LE(test::rel_diff(a, b), 1e-5f);
  }
  EXPECT_EQ(q->engine->generate(8, true), t->engine->generate(8, true));
}

TEST(ReleaseCheckpoint, Fp8Block128AndFp4ExpertsEqualTheTwin) {
  expect_equal_to_twin(converted("rel128", 128, true, true));
}
TEST(ReleaseCheckpoint, Fp8Block32EqualsTheTwin) { expect_equal_to_twin(converted("rel32", 32, true, true)); }
TEST(ReleaseCheckpoint, TransformersNamedFp8EqualsTheTwin) {
  expect_equal_to_twin(converted("tf128", 128, false, false));
}

TEST(ReleaseCheckpoint, Fp4StaysPacked) {
  const std::string dir = converted("relmem", 128, true, true);
  auto q = test::make_model(dir), t = test::make_model(dir + "_twin");
  const auto& experts = q->engine->weights().layers[2].experts;
  const auto held = std::find_if(experts.begin(), experts.end(), [](auto& e) { return e.loaded(); });
  ASSERT_NE(held, experts.end());
  const Weight& w1 = held->w1;
  ASSERT_EQ(w1.dtype, DType::F4_E2M1);
  EXPECT_EQ(w1.nbytes() * 8, size_t(w1.numel()) * 4) << "two codes a byte";
  EXPECT_LT(q->engine->weights().bytes, t->engine->weights().bytes);
  // inspect's stored size is what the file holds: every tensor's bytes, scales included.
  const Checkpoint ck = Checkpoint::open(dir);
  int64_t file = 0;
  for (const std::string& n : ck.names()) file += int64_t(ck.get(n).nbytes());
  const WeightBytes wb = checkpoint_weight_bytes(q->ms.cfg, ck);
  EXPECT_EQ(wb.shared + wb.experts, file);
  // The weights held match it: the shared ones whole, this rank's experts.
  EXPECT_LE(q->engine->weights().bytes, size_t(wb.per_rank(q->ms.cfg, q->grid.ep)));
}

// A copy of a converted checkpoint with one change: edit(tensors, config) on rank 0.
std::string variant(const std::string& dir, const std::string& name,
                    const std::function<void(std::vector<TensorToWrite>&, json&)>& edit) {
  const comm::Comm w = comm::Comm::world();
  const fs::path dst = dir + "_" + name;
  if (w.rank() == 0) {
    fs::remove_all(dst);
    fs::create_directories(dst);
    json cfg = json::parse(std::ifstream(fs::path(dir) / "config.json"));
    auto tensors = test::checkpoint_tensors(Checkpoint::open(dir));
    edit(tensors, cfg);
    std::ofstream(dst / "config.json") << cfg.dump(2);
    write_safetensors((dst / "model.safetensors").string(), tensors);
  }
  w.barrier();
  return dst.string();
}

std::string load_error(const std::string& dir) {
  return test::error_of([&] { test::make_model(dir); });
}

TEST(ReleaseCheckpoint, BadFilesAreRefusedByName) {
  const std::string dir = converted("relbad", 128, true, true);
  auto drop = [](std::vector<TensorToWrite>& t, const std::string& n) {
    t.erase(std::remove_if(t.begin(), t.end(), [&](auto& x) { return x.name == n; }), t.end());
  };
  // weight_block_size that does not give the scale's shape.
  std::string e = load_error(variant(dir, "block", [](auto&, json& c) {
    c["quantization_config"]["weight_block_size"] = {64, 64};
  }));
  EXPECT_NE(e.find("scale 'layers.0.attn.wq_a.scale' has shape [1, 1], but weight_block_size "
                   "[64, 64] tiles 'layers.0.attn.wq_a.weight' [64, 128] into [1, 2]"),
            std::string::npos) << e;
  // A missing scale.
  e = load_error(variant(dir, "noscale", [&](auto& t, json&) { drop(t, "layers.1.attn.wkv.scale"); }));
  EXPECT_NE(e.find("quantized tensor 'layers.1.attn.wkv.weight' has no scale"), std::string::npos) << e;
  // An I8 tensor that is not a routed expert's.
  e = load_error(variant(dir, "i8", [](auto& t, json&) {
    for (auto& x : t)
      if (x.name == "layers.0.attn.wkv.weight") {
        x.dtype = DType::I8;
        x.shape[1] /= 2;
        x.values.assign(size_t(x.shape[0] * x.shape[1]), 1.f);
      }
  }));
  EXPECT_NE(e.find("tensor 'layers.0.attn.wkv.weight' is I8: packed FP4 is read only for routed "
                   "expert weights"), std::string::npos) << e;
  // An FP8 weight's scale of integers (U8 would be read as numbers 0-255 silently).
  e = load_error(variant(dir, "u8scale", [](auto& t, json&) {
    for (auto& x : t)
      if (x.name == "layers.0.attn.wq_a.scale") x.dtype = DType::U8;
  }));
  EXPECT_NE(e.find("scale 'layers.0.attn.wq_a.scale' has dtype U8, expected F32, BF16 or F8_E8M0"),
            std::string::npos) << e;
  // Both naming schemes in one checkpoint.
  e = load_error(variant(dir, "mixed", [](auto& t, json&) {
    for (auto& x : t)
      if (x.name == "norm.weight") x.name = "model.norm.weight";
  }));
  EXPECT_NE(e.find("mixes transformers names ('model.norm.weight') and DeepSeek release names"),
            std::string::npos) << e;
}

}  // namespace
}  // namespace modelone
