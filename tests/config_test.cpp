// Configs: presets, strict .pbtxt, transformers config.json (legacy keys too), --set overrides.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/base/check.h"
#include "model/config/config_io.h"
#include "tests/support.h"

namespace modelone {
namespace {

using test::error_of;

std::string write_tmp(const std::string& name, const std::string& text) {
  const auto p = std::filesystem::temp_directory_path() / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(Config, PresetsResolve) {
  for (auto& name : preset_names()) {
    pb::ModelConfig p;
    ASSERT_TRUE(find_preset(name, &p)) << name;
    const ModelConfig c = config_from_proto(p, name);
    EXPECT_EQ(int64_t(c.attn.size()), c.num_layers) << name;
  }
  pb::ModelConfig p;
  ASSERT_TRUE(find_preset("v4-flash", &p));
  const ModelConfig f = config_from_proto(p, "v4-flash");
  EXPECT_EQ(f.hidden_size, 4096);
  EXPECT_EQ(f.rope_dim, 64);
  EXPECT_EQ(f.attn[0], AttnKind::Sliding);
  EXPECT_EQ(f.attn[2], AttnKind::CSA);
  EXPECT_EQ(f.attn[3], AttnKind::HCA);
  EXPECT_EQ(f.mlp[2], MlpKind::HashMoE);
  EXPECT_EQ(f.mlp[3], MlpKind::MoE);
  EXPECT_EQ(f.rope_compress.type, RopeParams::Type::Yarn);
  EXPECT_EQ(f.rope_compress.factor, 16);
  EXPECT_EQ(f.rope_compress.theta, 160000);
  EXPECT_FALSE(find_preset("nope", &p));
}

TEST(Config, PbtxtIsStrict) {
  const std::string unknown = error_of([] { parse_pbtxt("hidden_size: 8\nhiden_size: 4\n", "x.pbtxt"); });
  EXPECT_NE(unknown.find("x.pbtxt:2"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("hiden_size"), std::string::npos) << unknown;
  const std::string malformed = error_of([] { parse_pbtxt("hidden_size: {", "y.pbtxt"); });
  EXPECT_NE(malformed.find("y.pbtxt:1"), std::string::npos) << malformed;
  const std::string type = error_of([] { parse_pbtxt("hidden_size: \"big\"", "z.pbtxt"); });
  EXPECT_NE(type.find("z.pbtxt:1"), std::string::npos) << type;
}

TEST(Config, FixtureConfigJson) {
  const pb::ModelConfig p = read_config_json(test::data_dir("hf_v4_tiny") + "/config.json");
  const ModelConfig c = config_from_proto(p, "fixture");
  EXPECT_EQ(c.hca_rate, 8);
  EXPECT_EQ(c.csa_rate, 4);
  EXPECT_EQ(c.rope_dim, 16);
  EXPECT_EQ(c.attn[0], AttnKind::HCA);
  EXPECT_EQ(c.attn[2], AttnKind::Sliding);
  EXPECT_EQ(c.mlp[0], MlpKind::HashMoE);
  EXPECT_EQ(c.rope_compress.factor, 2.0);  // explicit factor, not 2048 / 512
  EXPECT_EQ(c.rope_compress.original_max_position, 512);
  EXPECT_EQ(c.rope_main.theta, 10000);
}

TEST(Config, LegacyKeys) {
  // DeepSeek's own config.json style: compress_ratios (with the MTP entry), legacy rates,
  // num_hash_layers, qk_rope_head_dim and a flat rope_scaling dict with "type".
  const std::string path = write_tmp("legacy_config.json", R"({
    "model_type": "deepseek_v4", "num_hidden_layers": 4, "hidden_size": 64, "head_dim": 32,
    "qk_rope_head_dim": 8, "compress_ratios": [0, 4, 128, 4, 0], "compress_rate_csa": 4,
    "compress_rate_hca": 128, "num_hash_layers": 1, "index_n_heads": 16, "index_head_dim": 16,
    "num_attention_heads": 2, "o_groups": 2, "eos_token_id": [7, 8],
    "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536,
                     "beta_fast": 32, "beta_slow": 1},
    "architectures": ["DeepseekV4ForCausalLM"], "torch_dtype": "bfloat16"})");
  const ModelConfig c = config_from_proto(read_config_json(path), "legacy");
  EXPECT_EQ(c.attn, (std::vector<AttnKind>{AttnKind::Sliding, AttnKind::CSA, AttnKind::HCA,
                                           AttnKind::CSA}));
  EXPECT_EQ(c.mlp, (std::vector<MlpKind>{MlpKind::HashMoE, MlpKind::MoE, MlpKind::MoE,
                                         MlpKind::MoE}));
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.eos_token_id, 7);
  EXPECT_EQ(c.rope_compress.type, RopeParams::Type::Yarn);
  EXPECT_EQ(c.rope_compress.theta, 160000);
  EXPECT_EQ(c.rope_compress.attention_factor, 1.0);
  EXPECT_EQ(c.rope_main.type, RopeParams::Type::Default);

  const std::string no_factor = write_tmp("nofactor_config.json", R"({
    "num_hidden_layers": 1, "max_position_embeddings": 4096, "compress_ratios": [4],
    "index_n_heads": 16, "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 1024}})");
  EXPECT_EQ(config_from_proto(read_config_json(no_factor), "nf").rope_compress.factor, 4.0);
}

TEST(Config, BadJsonIsNamed) {
  const std::string path = write_tmp("bad_config.json", "{\"hidden_size\": ");
  EXPECT_NE(error_of([&] { read_config_json(path); }).find("bad_config.json"), std::string::npos);
  const std::string wrong = write_tmp("wrong_type.json", R"({"model_type": "llama"})");
  EXPECT_NE(error_of([&] { read_config_json(wrong); }).find("deepseek_v4"), std::string::npos);
  const std::string ratio = write_tmp("ratio.json", R"({"num_hidden_layers": 1, "compress_ratios": [7]})");
  EXPECT_NE(error_of([&] { config_from_proto(read_config_json(ratio), "r"); }).find("ratio 7"),
            std::string::npos);
}

TEST(Config, SetOverrides) {
  pb::ModelConfig p;
  ASSERT_TRUE(find_preset("v4-flash", &p));
  apply_override(&p, "num_hidden_layers=4");
  apply_override(&p, "n_routed_experts=16");
  apply_override(&p, "compress_ratios=0,4,128,4");
  apply_override(&p, "rope_scaling.factor=8");
  const ModelConfig c = config_from_proto(p, "flash-small");
  EXPECT_EQ(c.num_layers, 4);
  EXPECT_EQ(c.n_experts, 16);
  EXPECT_EQ(c.attn[3], AttnKind::CSA);
  EXPECT_EQ(c.rope_compress.factor, 8);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_NE(error_of([&] { apply_override(&p, "num_layerz=4"); }).find("num_layerz"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(&p, "hidden_size=big"); }).find("hidden_size"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(&p, "hidden_size"); }).find("key=value"),
            std::string::npos);
  apply_override(&p, "num_experts_per_tok=99");
  EXPECT_NE(error_of([&] { config_from_proto(p, "x"); }).find("num_experts_per_tok"),
            std::string::npos);
}

}  // namespace
}  // namespace modelone
