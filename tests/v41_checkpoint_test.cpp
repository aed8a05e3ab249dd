// DeepSeek-V4.1 checkpoints that do not fit their config: a kv source without its compressor or
// indexer-key tensors, an index source without its indexer queries, and a V4.1 config over a
// checkpoint that still carries V4's hc_head tensors. Each is one error naming the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "model/io/model_source.h"
#include "model/io/safetensors.h"
#include "tests/support.h"

namespace modelone {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::load_error;

// A copy of the V4.1 fixture with its tensors edited.
std::string v41_variant(const std::string& name, const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  const fs::path src = test::data_dir("v41_tiny"), dst = fs::temp_directory_path() / name;
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (const char* f : {"config.json", "engram_compression_map.npy"}) fs::copy_file(src / f, dst / f);
  std::vector<TensorToWrite> all = test::checkpoint_tensors(Checkpoint::open(src.string()));
  edit(all);
  write_safetensors((dst / "model.safetensors").string(), all);
  return dst.string();
}


TEST(V41Checkpoint, SourcesNeedTheirTensors) {
  for (const std::string name : {"layers.4.attn.indexer.wk.weight", "layers.1.attn.indexer.k_norm.weight",
                                 "layers.1.attn.compressor.wgate.weight", "layers.4.attn.compressor.wkv.weight",
                                 "layers.6.attn.indexer.wq_b.weight", "layers.6.attn.indexer.weights_proj.weight"}) {
    const std::string dir = v41_variant("modelone_v41_missing", [&](std::vector<TensorToWrite>& all) {
      all.erase(std::remove_if(all.begin(), all.end(), [&](const TensorToWrite& t) { return t.name == name; }),
                all.end());
    });
    const std::string err = load_error(dir);
    EXPECT_NE(err.find("is missing tensor '" + name + "'"), std::string::npos) << err;
  }
}

TEST(V41Checkpoint, V4HeadTensorsAreRefused) {
  const std::string dir = v41_variant("modelone_v41_hc_head", [](std::vector<TensorToWrite>& all) {
    all.push_back({"hc_head_fn", DType::F32, {4, 1024}, std::vector<float>(4096, 0.01f), {}});
  });
  const std::string err = load_error(dir);
  EXPECT_NE(err.find("holds 'hc_head_fn', a DeepSeek-V4 tensor"), std::string::npos) << err;
}

// The copy loads (the writer keeps every dtype, the fp8 Engram rows included), also with the
// parts of a release the text model does not read: DSpark's mtp.*, the vision tower, the aligner.
TEST(V41Checkpoint, CopyLoadsAndSkipsOtherParts) {
  EXPECT_EQ(load_error(v41_variant("modelone_v41_copy", [](std::vector<TensorToWrite>&) {})), "");
  const std::string dir = v41_variant("modelone_v41_extras", [](std::vector<TensorToWrite>& all) {
    for (const char* n : {"mtp.0.attn.wq_a.weight", "vision.blocks.0.attn.qkv.weight",
                          "aligner.proj.weight", "image_newline"})
      all.push_back({n, DType::BF16, {2, 4}, std::vector<float>(8, 0.5f), {}});
  });
  EXPECT_EQ(load_error(dir), "");
}

}  // namespace
}  // namespace modelone
