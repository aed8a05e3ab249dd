#include "model/io/model_source.h"

#include <google/protobuf/text_format.h>

#include <filesystem>

#include "model/base/check.h"
#include "model/config/config_io.h"
#include "model/io/engram_tables.h"
#include "model/io/safetensors.h"

namespace modelone {

namespace fs = std::filesystem;

ModelSource resolve_model(const std::string& model, const std::vector<std::string>& sets) {
  ModelSource ms;
  pb::ModelConfig p;
  std::string source;
  if (find_preset(model, &p)) {
    source = "preset " + model;
  } else if (model.size() > 6 && model.compare(model.size() - 6, 6, ".pbtxt") == 0) {
    p = read_pbtxt_file(model);
    source = model;
  } else if (fs::is_directory(model)) {
    const fs::path cj = fs::path(model) / "config.json";
    MO_REQUIRE(fs::exists(cj), "--model: checkpoint directory '", model, "' has no config.json");
    std::vector<std::string> unread;
    p = read_config_json(cj.string(), &unread);
    if (!unread.empty()) {
      std::string keys;
      for (auto& k : unread) keys += (keys.empty() ? "" : ", ") + k;
      ms.warnings.push_back(cj.string() + ": keys modelone does not read, ignored: " + keys);
    }
    if (!p.has_name()) p.set_name(model);
    source = cj.string();
    ms.synthetic = false;
  } else if (fs::exists(model)) {
    fail("--model: '", model, "' is a file, not a checkpoint directory, a preset or a .pbtxt config");
  } else if (model.find('/') != std::string::npos || model.rfind('.', 0) == 0) {
    fail("--model: checkpoint directory '", model, "' does not exist");
  } else {
    std::string names;
    for (auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
    fail("--model: '", model, "' is neither a preset (", names,
         ") nor a checkpoint directory nor a .pbtxt file");
  }
  for (auto& s : sets) apply_override(&p, s);
  // A cut renumbers layers, and a checkpoint's tensors are named by their own numbers.
  MO_REQUIRE(p.keep_layers_size() == 0 || ms.synthetic, "--set keep_layers cuts a preset or "
             ".pbtxt model (synthetic weights); '", model, "' is a checkpoint");
  google::protobuf::TextFormat::PrintToString(p, &ms.config_text);
  ms.cfg = config_from_proto(p, source);
  if (ms.synthetic) {
    ms.description = source + " (synthetic weights, seed " + std::to_string(ms.cfg.seed) + ")";
    ms.weights = synthetic_source(ms.cfg.seed, ms.cfg.weight_dtype);
  } else {
    auto ck = std::make_shared<const Checkpoint>(Checkpoint::open(model));
    check_checkpoint_arch(ms.cfg, *ck);
    ms.checkpoint = ck;
    ms.dir = model;
    ms.description = "checkpoint " + model;
    // Engram tables are sized and read in the dtype the checkpoint stores them in.
    if (ms.cfg.engram.enabled()) ms.cfg.engram.table_dtype = EngramTables::checkpoint_dtype(ms.cfg, *ck);
    ms.weights = checkpoint_source(ck, ms.cfg.fp8_block_rows, ms.cfg.fp8_block_cols);
  }
  return ms;
}

}  // namespace modelone
