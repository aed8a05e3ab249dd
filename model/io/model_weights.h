// The model's parameters, grouped the way the blocks use them, and the loader that fills them from
// a checkpoint or from synthetic values by walking the tensor table (tensor_table.h).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/io/weight_tensor.h"

namespace modelone {

class Checkpoint;

struct CompressorWeights {
  Weight wkv, wgate;  // [cw, D]: cw = head_dim (HCA, V4.1) or 2 * head_dim (CSA: two series);
                      // V4.1's ratio-1 sources have no wgate
  Weight ape;         // [rate, cw] position bias added to the gate (V4 only)
  Weight norm;        // [head_dim]
};

struct AttnWeights {
  Weight wq_a, q_norm, wq_b;  // q-LoRA: [q_lora, D], [q_lora], [H * Dh, q_lora]
  Weight wkv, norm;           // shared KV head: [Dh, D], [Dh]
  Weight wo_a, wo_b;          // grouped output: [G * R, H * Dh / G], [D, G * R]
  Weight attn_sink;           // [H]
  CompressorWeights compressor;                         // CSA and HCA layers
  CompressorWeights idx_compressor;                     // CSA: the indexer's own, at index_head_dim
  Weight idx_wq_b, idx_weights_proj;                    // CSA: [nI * Di, q_lora], [nI, D]
  Weight idx_wk, idx_k_norm;                            // V4.1 kv sources: [Di, Dh], [Di]
};

struct ExpertWeights {
  Weight w1, w2, w3;  // gate [I, D], down [D, I], up [I, D]
  bool loaded() const { return !w1.empty(); }
};

// Engram (V4.1), on its layers only. The table itself lives sharded in dist/engram_store.h.
struct EngramWeights {
  Weight wkv;                 // [(hc + 1) * D, C * head_dim]: hc keys, then the value
  Weight q_weight, k_weight;  // [hc, D]: the gate's per-stream query and key scales
  bool loaded() const { return !wkv.empty(); }
};

struct LayerWeights {
  Weight attn_norm, ffn_norm;                       // [D]
  Weight hc_attn_fn, hc_attn_base, hc_attn_scale;   // [(2+hc)*hc, hc*D], [(2+hc)*hc], [3]
  Weight hc_ffn_fn, hc_ffn_base, hc_ffn_scale;
  AttnWeights attn;
  Weight gate, gate_bias, tid2eid;                  // [E, D], [E] (top-k), [V, k] I64 (hash)
  std::vector<ExpertWeights> experts;               // [E]; only the owned ones are loaded
  ExpertWeights shared;
  EngramWeights engram;
};

struct ModelWeights {
  Weight embed, head, norm;                         // [V, D], [V, D], [D]
  Weight hc_head_fn, hc_head_base, hc_head_scale;   // [hc, hc*D], [hc], [1]
  std::vector<LayerWeights> layers;
  size_t bytes = 0;                                 // resident parameter bytes
  size_t repacked = 0;  // of those, bytes repacked at load for the bf16 panel kernel (weight_packing.h)
};

// Where tensors come from: a checkpoint (checked against the expected shape) or synthetic values.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual Weight load(const WeightRequest& req) = 0;
  virtual std::string describe() const = 0;
};
// Checkpoints name tensors the transformers way or DeepSeek's release way (tensor_table.h);
// name_scheme says which (an Error when a checkpoint mixes them), scheme_name spells a table
// name in it.
enum class NameScheme : uint8_t { Transformers, Release };
NameScheme name_scheme(const Checkpoint& ck);
std::string scheme_name(NameScheme s, const std::string& table_name);
// A V4.1 config over a checkpoint holding V4-only tensors (hc_head_*, compressor.ape, the
// indexer's own compressor) is an error naming the first such tensor: the config is wrong.
void check_checkpoint_arch(const ModelConfig& cfg, const Checkpoint& ck);
// FP8 weights are read with block scales of block_rows x block_cols (the config's
// quantization_config.weight_block_size).
std::unique_ptr<WeightSource> checkpoint_source(std::shared_ptr<const Checkpoint> ck,
                                                int64_t block_rows = 128, int64_t block_cols = 128);
std::unique_ptr<WeightSource> synthetic_source(uint64_t seed, DType dtype);

// owns_expert(layer, expert): whether this rank holds that routed expert. Everything else is
// loaded on every rank.
using ExpertFilter = std::function<bool(int64_t layer, int64_t expert)>;
// progress(done, total): tensors loaded so far, called after each layer.
using LoadProgress = std::function<void(int64_t done, int64_t total)>;
// want(spec): load only the tensors of the table entries it accepts (benchmarks of one block).
struct TensorSpec;
using SpecFilter = std::function<bool(const TensorSpec&)>;
ModelWeights load_weights(const ModelConfig& cfg, WeightSource& src, const ExpertFilter& owns,
                          const LoadProgress& progress = nullptr, const SpecFilter& want = nullptr);

}  // namespace modelone
