// DeepSeek-V4.1's attention schedule in the config: compress_ratios (0, 1, 2, ...), the kv and
// index source layers and the candidate source (docs/architecture.md, "DeepSeek-V4.1 in this
// picture"), resolved into ModelConfig::shared and checked once.
#pragma once
#include <string>

#include "model/config/config.h"

namespace modelone {

namespace pb { class ModelConfig; }

// Fills c->attn (Sliding for ratio 0, Shared otherwise) and c->shared from p. Needs
// c->num_layers. Checks only what it must to fill them; validate_shared_attn checks the rest.
void resolve_shared_attn(const pb::ModelConfig& p, ModelConfig* c, const std::string& source);

// One error naming the first rule the schedule breaks: sources increasing and inside the model,
// kv sources on ratio > 0 layers, every index source and ratio > 0 layer after a kv source of its
// ratio, the candidate source an index source, and top-k picks that index the cache a layer reads.
void validate_shared_attn(const ModelConfig& c, const std::string& source);

}  // namespace modelone
