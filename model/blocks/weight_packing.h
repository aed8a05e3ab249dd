// Which weights the bf16 compute path reads in the panel kernel's layout (DType::BF16_P64,
// model/kernels/panel_weights.h), repacked once after loading. Same bytes, another order; BF16
// weights only (FP8 / FP4 stay as stored and are decoded a panel at a time), and only those
// every consumer reads through linear() (the router's gate and the mHC mixes, read by
// linear_fp32, stay in rows; so do V4.1's compressors and the embedding, read by rows).
#pragma once
#include <cstdint>

#include "model/config/config.h"
#include "model/io/model_weights.h"

namespace modelone {

struct PackedWeights {
  int64_t tensors = 0, bytes = 0;
};

// The routed experts' weights: the grouped product then reads each panel as loaded.
PackedWeights pack_expert_panels(ModelWeights& w);
// The dense projections of a layer (q, kv, output, indexer, V4's compressors, the shared
// expert, Engram's kv) and the LM head when it is not the embedding: a decode step streams
// each of them once, at about twice the rate of the row-wise dot kernel.
PackedWeights pack_dense_panels(const ModelConfig& cfg, ModelWeights& w);

}  // namespace modelone
