// The DeepSeek-V4 checkpoint described as a table: tensor name pattern -> role -> shape rule ->
// which layers have it -> where it lives in ModelWeights. Loading, validation, synthetic weights,
// parameter counts and `modelone inspect` all walk this one table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/io/weight_tensor.h"

namespace modelone {

struct ModelWeights;  // model/io/model_weights.h (which loads through this table)

enum class Scope : uint8_t { Global, Layer, Expert };

struct TensorSpec {
  const char* pattern;  // "{L}" = layer index, "{E}" = expert index
  const char* role;
  Scope scope;
  bool (*present)(const ModelConfig&, int64_t layer);
  std::vector<int64_t> (*shape)(const ModelConfig&, int64_t layer);
  Init init;
  Weight* (*slot)(ModelWeights&, int64_t layer, int64_t expert);
  bool integer = false;  // I64 table (tid2eid)
};

const std::vector<TensorSpec>& tensor_table();

std::string expand_name(const char* pattern, int64_t layer, int64_t expert);

// The table spells names the way transformers writes them. DeepSeek's release drops "model.",
// and renames three: model.embed_tokens.weight -> embed.weight, model.hc_head.hc_X -> hc_head_X,
// attn.norm -> attn.kv_norm. release_name maps a table name (or its ".scale") to the release's.
std::string release_name(const std::string& table_name);

// Every tensor of the model with its name and shape, in table order (for inspect and counts).
struct TensorInstance {
  const TensorSpec* spec;
  std::string name;
  std::vector<int64_t> shape;
  int64_t layer, expert;
};
std::vector<TensorInstance> enumerate_tensors(const ModelConfig& cfg);

}  // namespace modelone
