// The model's shape and hyper-parameters, resolved from a preset or a checkpoint's config.json
// (see config_io.h) and validated once; everything downstream reads this struct.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/base/dtype.h"
#include "model/kernels/rope.h"

namespace modelone {

namespace pb { class ModelConfig; }

// Sliding: window only. CSA / HCA: V4's compressed layers. Shared: a V4.1 layer with ratio > 0,
// attending its window plus the top-k entries of the compressed cache it shares (SharedAttn).
enum class AttnKind : uint8_t { Sliding, CSA, HCA, Shared };
constexpr size_t kAttnKinds = 4;
enum class Arch : uint8_t { V4, V41 };
enum class MlpKind : uint8_t { HashMoE, MoE };
const char* attn_kind_name(AttnKind k);  // config.json spelling

// Engram (V4.1's conditional memory), see docs/architecture.md, "Engram". Disabled when `layers` is empty.
struct EngramConfig {
  std::vector<int64_t> layers;                    // 0-based layer ids, increasing
  int64_t max_ngram = 4, n_heads = 8, head_dim = 256;
  int64_t prime_start = 16000000;                 // engram_vocab_size
  int64_t pad_token_id = 2, compressed_vocab = 0;
  std::vector<int64_t> num_embeddings;            // rows per Engram layer, if the config gives them
  DType table_dtype = DType::F32;                 // row storage: F32, BF16 or F8_E4M3 (+ scales)
  bool enabled() const { return !layers.empty(); }
  int64_t columns() const { return (max_ngram - 1) * n_heads; }  // C: rows per position
  int64_t dim() const { return columns() * head_dim; }          // memory vector per position
  int64_t index_of(int64_t layer) const;          // position in `layers`, -1 if not an Engram layer
};

// DeepSeek-V4.1's sharing across layers (docs/architecture.md, "Shared caches"): only kv
// sources own a compressor and an entry cache (and, derived from its latent, the indexer keys);
// only index sources run an indexer. Every other ratio > 0 layer reads the latest source at or
// below it. The candidate source's block picks mask the index sources after it.
struct SharedAttn {
  std::vector<int64_t> ratio;             // per layer: 0 window only, r > 0 entries of r tokens
  std::vector<int64_t> kv_sources, index_sources;  // increasing layer ids
  int64_t candidate_source = -1;          // an index source, or -1: no candidate blocks
  int64_t candidate_topk_blocks = 0, candidate_block_size = 0;
  std::vector<int64_t> kv_of, index_of;   // per layer: the latest source at or below, or -1
  bool is_kv_source(int64_t l) const { return l >= 0 && kv_of.size() > size_t(l) && kv_of[size_t(l)] == l; }
  bool is_index_source(int64_t l) const {
    return l >= 0 && index_of.size() > size_t(l) && index_of[size_t(l)] == l && ratio[size_t(l)] > 0;
  }
  // An index source after the candidate source: its scores are masked to the candidate blocks.
  bool uses_candidates(int64_t l) const { return candidate_source >= 0 && l > candidate_source; }
};

struct ModelConfig {
  std::string name;                 // preset name or checkpoint directory
  Arch arch = Arch::V4;
  int64_t vocab_size = 0, hidden_size = 0, num_layers = 0;
  // Attention: q-LoRA, shared single KV head of head_dim, RoPE on the trailing rope_dim dims.
  int64_t num_heads = 0, head_dim = 0, q_lora_rank = 0, rope_dim = 0;
  int64_t o_groups = 0, o_lora_rank = 0, sliding_window = 0;
  std::vector<AttnKind> attn;       // per layer
  int64_t csa_rate = 4, hca_rate = 128;
  int64_t index_n_heads = 0, index_head_dim = 0, index_topk = 0;
  RopeParams rope_main, rope_compress;
  // MoE
  int64_t n_experts = 0, top_k = 0, n_shared_experts = 1, moe_inter = 0;
  std::vector<MlpKind> mlp;         // per layer
  double routed_scaling_factor = 1.0, swiglu_limit = 0.0;
  std::string scoring_func = "sqrtsoftplus";
  // mHC
  int64_t hc_mult = 4, hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6, rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0, bos_token_id = -1, eos_token_id = -1;
  bool tie_word_embeddings = false;
  EngramConfig engram;
  SharedAttn shared;                // V4.1 only
  double gate_temp = 1.0;           // V4.1: router logits / gate_temp
  bool fake_quant = false;          // V4.1: FP8 window KV, FP4 entries and indexer q / k in forward
  int64_t fp8_block_rows = 128, fp8_block_cols = 128;  // quantization_config.weight_block_size
  // Synthetic weights
  uint64_t seed = 0;
  DType weight_dtype = DType::BF16;

  bool v41() const { return arch == Arch::V41; }
  int64_t compress_rate(int64_t layer) const {
    switch (attn[size_t(layer)]) {
      case AttnKind::CSA: return csa_rate;
      case AttnKind::HCA: return hca_rate;
      case AttnKind::Shared: return shared.ratio[size_t(layer)];
      default: return 0;
    }
  }
  const RopeParams& rope_for(int64_t layer) const {
    return attn[size_t(layer)] == AttnKind::Sliding ? rope_main : rope_compress;
  }
  int64_t q_dim() const { return num_heads * head_dim; }

  // Throws Error naming the first inconsistent field (source says where the config came from).
  void validate(const std::string& source) const;
};

// Resolve defaults (transformers' DeepseekV4Config defaults, i.e. V4-Flash) and legacy fields.
ModelConfig config_from_proto(const pb::ModelConfig& p, const std::string& source);

}  // namespace modelone
