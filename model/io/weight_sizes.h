// Weight memory as the tensors are stored: every tensor of the table in one dtype (synthetic
// presets), in DeepSeek's release format (FP8 projections with E8M0 block scales, FP4 routed
// experts with a scale per 32, BF16 / F32 elsewhere), or as a checkpoint actually holds them.
#pragma once
#include <cstdint>

#include "model/config/config.h"

namespace modelone {

class Checkpoint;

struct WeightBytes {
  int64_t shared = 0;   // what every rank holds: all but the routed experts (scales included)
  int64_t experts = 0;  // all routed experts of all layers (scales included)
  // The busiest ep rank: the shared weights and ceil(E / ep) experts of every layer.
  int64_t per_rank(const ModelConfig& cfg, int ep) const;
};

WeightBytes uniform_weight_bytes(const ModelConfig& cfg, DType dtype);
WeightBytes release_weight_bytes(const ModelConfig& cfg);
WeightBytes checkpoint_weight_bytes(const ModelConfig& cfg, const Checkpoint& ck);

}  // namespace modelone
