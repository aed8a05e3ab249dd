// DeepSeek-V4.1 configs: the fixture's nested config.json resolves to its schedule, keys the
// loader does not read are reported, and every broken schedule is one error naming the rule
// (kv sources increasing and on ratio > 0 layers, index sources after a kv source, the candidate
// source an index source, no layer before its first source, V4.1 keys only under deepseek_v41).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/base/check.h"
#include "model/config/config_io.h"
#include "tests/support.h"

namespace modelone {
namespace {

using json = nlohmann::json;
using test::error_of;

json fixture_config() {
  std::ifstream f(test::data_dir("v41_tiny") + "/config.json");
  return json::parse(f);
}

// The fixture's config.json with `edit` applied to its text_config, resolved; "" or the error.
std::string resolve_error(const std::function<void(json&)>& edit, std::vector<std::string>* unread = nullptr) {
  json j = fixture_config();
  edit(j);
  const auto dir = std::filesystem::temp_directory_path() / "modelone_config_v41";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "config.json").string();
  std::ofstream(path) << j.dump();
  return error_of([&] { config_from_proto(read_config_json(path, unread), path); });
}

TEST(ConfigV41, FixtureSchedule) {
  std::vector<std::string> unread;
  const pb::ModelConfig p = read_config_json(test::data_dir("v41_tiny") + "/config.json", &unread);
  const ModelConfig c = config_from_proto(p, "v41_tiny");
  EXPECT_TRUE(unread.empty()) << unread.front();
  ASSERT_TRUE(c.v41());
  EXPECT_TRUE(c.fake_quant) << "on by default: part of V4.1's forward";
  EXPECT_EQ(c.rms_norm_eps, 1e-20);
  EXPECT_EQ(c.attn[0], AttnKind::Sliding);
  EXPECT_EQ(c.attn[1], AttnKind::Shared);
  EXPECT_EQ(c.compress_rate(2), 2);
  EXPECT_EQ(c.compress_rate(7), 1);
  EXPECT_EQ(c.mlp[0], MlpKind::MoE) << "no hash layers unless the file says so";
  EXPECT_EQ(c.shared.kv_of, (std::vector<int64_t>{-1, 1, 1, 1, 4, 4, 4, 4}));
  EXPECT_EQ(c.shared.index_of, (std::vector<int64_t>{-1, 1, 1, 1, 4, 4, 6, 6}));
  EXPECT_TRUE(c.shared.uses_candidates(6));
  EXPECT_FALSE(c.shared.uses_candidates(4)) << "the candidate source's own top-k is not masked";
  EXPECT_EQ(c.rope_compress.type, RopeParams::Type::Yarn);
  EXPECT_EQ(c.rope_dim, 32);
}

TEST(ConfigV41, UnreadKeysAreReported) {
  std::vector<std::string> unread;
  EXPECT_EQ(resolve_error([](json& j) { j["text_config"]["frobnicate_ratio"] = 3; }, &unread), "");
  EXPECT_EQ(unread, std::vector<std::string>{"frobnicate_ratio"});
  unread.clear();  // the vision tower's and DSpark's keys are not the text model's
  EXPECT_EQ(resolve_error([](json& j) { j["text_config"]["dspark_block_size"] = 4; }, &unread), "");
  EXPECT_TRUE(unread.empty());
}

TEST(ConfigV41, BadSchedulesAreNamed) {
  auto tc = [](const char* key, json v) {
    return [key, v](json& j) { j["text_config"][key] = v; };
  };
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {tc("kv_source_layer_ids", {4, 1}), "kv_source_layer_ids must be increasing"},
      {tc("kv_source_layer_ids", {0, 4}), "names layer 0, a window-only layer"},
      {tc("kv_source_layer_ids", {1, 9}), "layer 9 is outside [0, 8)"},
      {tc("index_source_layer_ids", {0, 4, 6}), "index source layer 0 is a window-only layer"},
      {tc("kv_source_layer_ids", {4}), "index source layer 1 has no kv source at or before it"},
      {tc("candidate_source_layer_id", 5), "candidate_source_layer_id 5 is not an index source"},
      {[](json& j) {
         j["text_config"]["kv_source_layer_ids"] = {4};
         j["text_config"]["index_source_layer_ids"] = {4, 6};
       },
       "layer 1 (compress ratio 2) comes before the first kv source"},
      {tc("compress_ratios", {0, 2, 2, 2, 2, 1, 1, 1}), "layer 5 has compress ratio 1 but reads"},
      {tc("compress_ratios", {0, 2, 2}), "compress_ratios has 3 entries"},
      {tc("compress_ratios", {0, 2, 2, 2, 1, 1, 1, -1}), "compress_ratios[7] is -1"},
      {tc("layer_types", {"sliding_attention"}), "layer_types is V4's"},
      {tc("candidate_topk_blocks", 0), "candidate_topk_blocks and candidate_block_size must be positive"},
      {[](json& j) { j["model_type"] = "deepseek_v4"; j["text_config"]["model_type"] = "deepseek_v4"; },
       "kv_source_layer_ids is a DeepSeek-V4.1 key, but model_type is deepseek_v4"},
  };
  for (const auto& [edit, want] : cases) {
    const std::string err = resolve_error(edit);
    EXPECT_NE(err.find(want), std::string::npos) << "want '" << want << "', got '" << err << "'";
  }
}

// A layer whose top-k comes from an index source scoring another kv source's cache.
TEST(ConfigV41, PicksMustNumberTheCacheRead) {
  const std::string err = resolve_error([](json& j) {
    j["text_config"]["index_source_layer_ids"] = {1, 6};
    j["text_config"]["candidate_source_layer_id"] = -1;
  });
  EXPECT_NE(err.find("layer 4 reads kv source 4's entries but takes its top-k from index source 1"),
            std::string::npos)
      << err;
}

}  // namespace
}  // namespace modelone
