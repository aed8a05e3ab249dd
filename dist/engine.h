// The engine: one sequence's forward pass through the whole model on this rank's share of the
// world. Attention runs on the ranks that hold the sequence; the MoE blocks run over the ep
// group (dist/moe_parallel.h). Ranks with no tokens still step through every layer so the
// expert exchanges line up. W = 1 is the smallest world, not a separate path.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "dist/grid.h"
#include "dist/moe_parallel.h"
#include "model/attention.h"
#include "model/config.h"
#include "model/layer_cache.h"
#include "model/rope.h"
#include "model/weights.h"

namespace modelone {

struct EngineOptions {
  DType kv_dtype = DType::F32;
  MoeOptions moe;
  bool capture_hidden = false;  // keep the residual after every layer (parity tests)
};

class Engine {
 public:
  // placement: one per layer (ExpertPlacement::uniform for the default contiguous split).
  Engine(const ModelConfig& cfg, const RankGrid& grid, ModelWeights weights,
         std::vector<ExpertPlacement> placement, EngineOptions opt);

  // Run tokens[T] at positions position() .. position() + T - 1. logits receives [T, vocab] when
  // all_logits, else the last position's [vocab] (nothing when T = 0).
  void forward(const int32_t* tokens, int64_t T, bool all_logits, std::vector<float>* logits);
  void reset();  // forget the sequence
  int64_t position() const { return pos_; }

  // With capture_hidden: [0] the embedding streams [T, hc, D], [l + 1] the streams after layer l,
  // and last the final normed hidden state [T, D], for the last forward() call.
  const std::vector<std::vector<float>>& hidden() const { return hidden_; }
  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  MoeParallel& moe() { return moe_; }
  size_t cache_bytes() const;

 private:
  void layer_forward(int64_t l, const int32_t* tokens, int64_t T, float* x);

  const ModelConfig& cfg_;
  const RankGrid& grid_;
  ModelWeights w_;
  EngineOptions opt_;
  Rope rope_main_, rope_compress_;
  MoeParallel moe_;
  std::vector<LayerCache> caches_;
  int64_t pos_ = 0;
  // Per-layer scratch, reused across layers and steps: h / out [T, D], post [T, hc], comb [T, hc, hc].
  std::vector<float> x_, y_, h_, out_, post_, comb_;  // x_ [T, hc, D] streams, y_ [T, D] head input
  AttnScratch attn_scratch_;
  // MODELONE_INJECT_FAULT=RANK:LAYER makes that world rank fail in that layer (tests of the
  // error path: one rank failing mid-run must stop every rank).
  int fault_rank_ = -1;
  int64_t fault_layer_ = -1;
  std::vector<std::vector<float>> hidden_;
};

}  // namespace modelone
