// Cutting a model down to some of its layers (the keep_layers config field), so a benchmark on
// one machine can keep a model's per-layer shapes and the mix of its layer kinds: V4.1's sources
// and the layers reading them, V4's sliding / CSA / HCA. Per-layer lists (compress_ratios,
// layer_types, mlp_layer_types, hash layers) are subset; layer references (kv and index sources,
// the candidate source, Engram layers) are renumbered. A cut that leaves out a source some kept
// layer reads is an error naming both.
#pragma once
#include <string>

#include "model/config.pb.h"

namespace modelone {

// p without keep_layers, cut to p.keep_layers. Synthetic weights follow the new numbering.
pb::ModelConfig select_layers(const pb::ModelConfig& p, const std::string& source);

}  // namespace modelone
