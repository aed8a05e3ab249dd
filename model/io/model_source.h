// Resolving --model: a built-in preset name, a .pbtxt config (both with synthetic weights), or a
// checkpoint directory as transformers writes it. --set overrides apply to either.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/io/model_weights.h"

namespace modelone {

struct ModelSource {
  ModelConfig cfg;
  std::string description;              // for logs: "preset tiny", "checkpoint DIR"
  std::string config_text;              // the resolved config (protobuf text), for rank agreement
  bool synthetic = true;
  std::string dir;                      // the checkpoint directory (empty for presets)
  std::shared_ptr<const class Checkpoint> checkpoint;
  std::unique_ptr<WeightSource> weights;
  std::vector<std::string> warnings;    // for rank 0's log: e.g. config.json keys not read
};

ModelSource resolve_model(const std::string& model, const std::vector<std::string>& sets);

}  // namespace modelone
