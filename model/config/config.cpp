#include "model/config/config.h"

#include <utility>

#include "model/base/check.h"
#include "model/config.pb.h"
#include "model/config/config_cut.h"
#include "model/config/config_v41.h"
#include "model/blocks/engram_hash.h"

namespace modelone {

const char* attn_kind_name(AttnKind k) {
  switch (k) {
    case AttnKind::Sliding: return "sliding_attention";
    case AttnKind::CSA: return "compressed_sparse_attention";
    case AttnKind::HCA: return "heavily_compressed_attention";
    case AttnKind::Shared: return "shared_compressed_attention";  // V4.1: no layer_types name
  }
  return "?";
}

namespace {

RopeParams rope_from(const pb::Rope& r, double default_theta, double default_partial,
                     int64_t head_dim, int64_t max_pos, const std::string& source,
                     const char* which) {
  RopeParams p;
  const std::string type = r.has_rope_type() ? r.rope_type() : "default";
  if (type == "yarn") p.type = RopeParams::Type::Yarn;
  else MO_REQUIRE(type == "default", source, ": rope ", which, ": unsupported rope_type '", type,
                  "' (expected default or yarn)");
  p.theta = r.has_rope_theta() ? r.rope_theta() : default_theta;
  const double partial = r.has_partial_rotary_factor() ? r.partial_rotary_factor() : default_partial;
  p.dim = int64_t(double(head_dim) * partial);
  if (p.type == RopeParams::Type::Yarn) {
    MO_REQUIRE(r.has_original_max_position_embeddings(), source, ": rope ", which,
               ": yarn needs original_max_position_embeddings");
    p.original_max_position = r.original_max_position_embeddings();
    // The explicit factor wins; only without one is it derived from the context extension.
    p.factor = r.has_factor() ? r.factor() : double(max_pos) / double(p.original_max_position);
    p.beta_fast = r.has_beta_fast() && r.beta_fast() != 0 ? r.beta_fast() : 32.0;
    p.beta_slow = r.has_beta_slow() && r.beta_slow() != 0 ? r.beta_slow() : 1.0;
    // V4 does not scale cos/sin by YaRN's mscale (transformers pins attention_factor = 1).
    p.attention_factor = r.has_attention_factor() ? r.attention_factor() : 1.0;
    p.truncate = r.has_truncate() ? r.truncate() : true;
  }
  return p;
}

Arch arch_from(const pb::ModelConfig& p, const std::string& source) {
  const std::string t = p.has_model_type() ? p.model_type() : "deepseek_v4";
  if (t == "deepseek_v41" || t == "deepseek_v41_text") return Arch::V41;
  MO_REQUIRE(t == "deepseek_v4", source, ": model_type is '", t,
             "', expected deepseek_v4 or deepseek_v41");
  // V4.1's keys in a V4 config mean a wrong model_type, not keys to ignore.
  const char* key = p.kv_source_layer_ids_size() ? "kv_source_layer_ids"
                    : p.index_source_layer_ids_size() ? "index_source_layer_ids"
                    : p.has_candidate_source_layer_id() ? "candidate_source_layer_id"
                    : p.has_gate_temp() ? "gate_temp"
                    : p.has_fake_quant() && p.fake_quant() ? "fake_quant"
                                                           : nullptr;
  MO_REQUIRE(!key, source, ": ", key, " is a DeepSeek-V4.1 key, but model_type is deepseek_v4 "
             "(V4.1 checkpoints say deepseek_v41)");
  return Arch::V4;
}

AttnKind attn_kind_from(const std::string& s, const std::string& source) {
  if (s == "sliding_attention") return AttnKind::Sliding;
  if (s == "compressed_sparse_attention") return AttnKind::CSA;
  if (s == "heavily_compressed_attention") return AttnKind::HCA;
  fail(source, ": layer_types: unknown layer type '", s, "'");
}

// The sizes and scalars, with V4-Flash's values where the file has none.
void read_sizes(const pb::ModelConfig& p, const std::string& source, ModelConfig* out) {
  ModelConfig& c = *out;
  c.name = p.has_name() ? p.name() : source;
  c.vocab_size = p.has_vocab_size() ? p.vocab_size() : 129280;
  c.hidden_size = p.has_hidden_size() ? p.hidden_size() : 4096;
  c.moe_inter = p.has_moe_intermediate_size() ? p.moe_intermediate_size() : 2048;
  c.num_layers = p.has_num_hidden_layers() ? p.num_hidden_layers() : 43;
  c.num_heads = p.has_num_attention_heads() ? p.num_attention_heads() : 64;
  MO_REQUIRE(!p.has_num_key_value_heads() || p.num_key_value_heads() == 1, source,
             ": num_key_value_heads must be 1 (shared-KV MQA), got ", p.num_key_value_heads());
  c.head_dim = p.has_head_dim() ? p.head_dim() : 512;
  c.q_lora_rank = p.has_q_lora_rank() ? p.q_lora_rank() : 1024;
  c.top_k = p.has_num_experts_per_tok() ? p.num_experts_per_tok() : 6;
  c.n_experts = p.has_n_routed_experts() ? p.n_routed_experts() : 256;
  c.n_shared_experts = p.has_n_shared_experts() ? p.n_shared_experts() : 1;
  c.scoring_func = p.has_scoring_func() ? p.scoring_func() : "sqrtsoftplus";
  c.routed_scaling_factor = p.has_routed_scaling_factor() ? p.routed_scaling_factor() : 1.5;
  c.max_position_embeddings = p.has_max_position_embeddings() ? p.max_position_embeddings() : 1048576;
  c.csa_rate = p.has_compress_rate_csa() ? p.compress_rate_csa() : 4;
  c.hca_rate = p.has_compress_rate_hca() ? p.compress_rate_hca() : 128;
  c.hc_mult = p.has_hc_mult() ? p.hc_mult() : 4;
  c.hc_sinkhorn_iters = p.has_hc_sinkhorn_iters() ? p.hc_sinkhorn_iters() : 20;
  c.hc_eps = p.has_hc_eps() ? p.hc_eps() : 1e-6;
  c.swiglu_limit = p.has_swiglu_limit() ? p.swiglu_limit() : 10.0;
  c.sliding_window = p.has_sliding_window() ? p.sliding_window() : 128;
  c.o_groups = p.has_o_groups() ? p.o_groups() : 8;
  c.o_lora_rank = p.has_o_lora_rank() ? p.o_lora_rank() : 1024;
  c.index_n_heads = p.has_index_n_heads() ? p.index_n_heads() : 64;
  c.index_head_dim = p.has_index_head_dim() ? p.index_head_dim() : 128;
  c.index_topk = p.has_index_topk() ? p.index_topk() : 512;
  c.rms_norm_eps = p.has_rms_norm_eps() ? p.rms_norm_eps() : 1e-6;
  c.bos_token_id = p.has_bos_token_id() ? p.bos_token_id() : 0;
  c.eos_token_id = p.has_eos_token_id() ? p.eos_token_id() : 1;
  c.tie_word_embeddings = p.has_tie_word_embeddings() && p.tie_word_embeddings();
  c.seed = p.has_seed() ? p.seed() : 0;
  c.gate_temp = p.has_gate_temp() ? p.gate_temp() : 1.0;
  if (p.has_weight_dtype())
    MO_REQUIRE(dtype_from_name(p.weight_dtype(), &c.weight_dtype) && dtype_is_float(c.weight_dtype),
               source, ": weight_dtype: unknown dtype '", p.weight_dtype(), "'");
  MO_REQUIRE(!p.has_hidden_act() || p.hidden_act() == "silu", source,
             ": hidden_act must be silu, got '", p.hidden_act(), "'");
  MO_REQUIRE(c.num_layers > 0, source, ": num_hidden_layers must be positive");
  MO_REQUIRE(c.head_dim > 0, source, ": head_dim must be positive");
}

// The attention kind of every layer.
void read_attention_schedule(const pb::ModelConfig& p, const std::string& source, ModelConfig* out) {
  ModelConfig& c = *out;
  const size_t n = size_t(c.num_layers);
  c.arch = arch_from(p, source);
  // layer_types: explicit > legacy compress_ratios > V4-Pro default (2 HCA, then HCA/CSA).
  // V4.1: compress_ratios only (0: window only, r > 0: a Shared layer of ratio r).
  if (c.v41()) {
    resolve_shared_attn(p, &c, source);
  } else if (p.layer_types_size() > 0) {
    for (auto& s : p.layer_types()) c.attn.push_back(attn_kind_from(s, source));
  } else if (p.compress_ratios_size() > 0) {
    for (int64_t r : p.compress_ratios()) {
      if (r == 0) c.attn.push_back(AttnKind::Sliding);
      else if (r == c.csa_rate || r == 4) c.attn.push_back(AttnKind::CSA);
      else if (r == c.hca_rate || r == 128) c.attn.push_back(AttnKind::HCA);
      else fail(source, ": compress_ratios: unsupported ratio ", r, " (expected 0, ", c.csa_rate,
                " or ", c.hca_rate, ")");
    }
  } else {
    for (size_t i = 0; i < n; ++i)
      c.attn.push_back(i < 2 || (i - 2) % 2 == 0 ? AttnKind::HCA : AttnKind::CSA);
  }
  // Checkpoints list an extra entry for the MTP layer; like transformers, keep the first n.
  MO_REQUIRE(c.attn.size() >= n, source, ": layer_types has ", c.attn.size(),
             " entries for num_hidden_layers = ", n);
  c.attn.resize(n);
}

// Hash-routed or learned-routed MoE for every layer.
void read_mlp_schedule(const pb::ModelConfig& p, const std::string& source, ModelConfig* out) {
  ModelConfig& c = *out;
  const size_t n = size_t(c.num_layers);
  MO_REQUIRE(!p.has_num_hash_layers() || p.num_hash_layers() >= 0, source,
             ": num_hash_layers must be at least 0, got ", p.num_hash_layers());
  if (p.mlp_layer_types_size() > 0) {
    for (auto& s : p.mlp_layer_types()) {
      if (s == "hash_moe") c.mlp.push_back(MlpKind::HashMoE);
      else if (s == "moe") c.mlp.push_back(MlpKind::MoE);
      else fail(source, ": mlp_layer_types: unknown type '", s, "' (expected hash_moe or moe)");
    }
    MO_REQUIRE(c.mlp.size() >= n, source, ": mlp_layer_types has ", c.mlp.size(),
               " entries for num_hidden_layers = ", n);
    c.mlp.resize(n);
  } else {
    // V4.1 has no hash layers unless the file says so.
    const int64_t n_hash = p.has_num_hash_layers() ? p.num_hash_layers() : c.v41() ? 0 : 3;
    for (size_t i = 0; i < n; ++i)
      c.mlp.push_back(int64_t(i) < n_hash ? MlpKind::HashMoE : MlpKind::MoE);
  }
}

// Both RoPEs and the FP8 block size.
void read_rope(const pb::ModelConfig& p, const std::string& source, ModelConfig* out) {
  ModelConfig& c = *out;
  // partial_rotary_factor > legacy qk_rope_head_dim / head_dim > 64 / 512.
  double partial = 64.0 / 512.0;
  if (p.has_partial_rotary_factor()) partial = p.partial_rotary_factor();
  else if (p.has_qk_rope_head_dim()) partial = double(p.qk_rope_head_dim()) / double(c.head_dim);
  const double theta = p.has_rope_theta() ? p.rope_theta() : 10000.0;
  const double ctheta = p.has_compress_rope_theta() ? p.compress_rope_theta() : 160000.0;
  c.rope_main = rope_from(p.rope_main(), theta, partial, c.head_dim, c.max_position_embeddings,
                          source, "main");
  // compress: nested rope_parameters.compress, else the legacy flat YaRN dict with its theta.
  pb::Rope comp = p.has_rope_compress() ? p.rope_compress() : p.rope_scaling();
  if (!p.has_rope_compress()) comp.set_rope_theta(ctheta);
  c.rope_compress = rope_from(comp, ctheta, partial, c.head_dim, c.max_position_embeddings,
                              source, "compress");
  c.rope_dim = c.rope_main.dim;
  if (p.weight_block_size_size() > 0) {
    MO_REQUIRE(p.weight_block_size_size() == 2 && p.weight_block_size(0) > 0 &&
                   p.weight_block_size(1) > 0,
               source, ": quantization_config.weight_block_size must be two positive sizes");
    c.fp8_block_rows = p.weight_block_size(0);
    c.fp8_block_cols = p.weight_block_size(1);
  }
}

// Engram's layers, hashing and tables (disabled when no layer is listed).
void read_engram(const pb::ModelConfig& p, const std::string& source, ModelConfig* out) {
  ModelConfig& c = *out;
  EngramConfig& e = c.engram;
  e.layers.assign(p.engram_layer_ids().begin(), p.engram_layer_ids().end());
  if (p.has_engram_max_ngram_size()) e.max_ngram = p.engram_max_ngram_size();
  if (p.has_engram_n_heads()) e.n_heads = p.engram_n_heads();
  if (p.has_engram_head_dim()) e.head_dim = p.engram_head_dim();
  if (p.has_engram_vocab_size()) e.prime_start = p.engram_vocab_size();
  if (p.has_engram_pad_token_id()) e.pad_token_id = p.engram_pad_token_id();
  if (p.has_engram_compressed_vocab_size()) e.compressed_vocab = p.engram_compressed_vocab_size();
  e.num_embeddings.assign(p.engram_num_embeddings().begin(), p.engram_num_embeddings().end());
  if (p.has_engram_table_dtype())
    MO_REQUIRE(dtype_from_name(p.engram_table_dtype(), &e.table_dtype) &&
                   (e.table_dtype == DType::F32 || e.table_dtype == DType::BF16 ||
                    e.table_dtype == DType::F8_E4M3),
               source, ": engram_table_dtype must be F32, BF16 or F8_E4M3, got '",
               p.engram_table_dtype(), "'");
}

}  // namespace

ModelConfig config_from_proto(const pb::ModelConfig& cut, const std::string& source) {
  if (cut.keep_layers_size() > 0) return config_from_proto(select_layers(cut, source), source);
  const pb::ModelConfig& p = cut;
  ModelConfig c;
  read_sizes(p, source, &c);
  read_attention_schedule(p, source, &c);
  read_mlp_schedule(p, source, &c);
  read_rope(p, source, &c);
  read_engram(p, source, &c);
  // V4.1's fake quantization is part of its forward: on unless switched off (--fake-quant off).
  c.fake_quant = c.v41() && (!p.has_fake_quant() || p.fake_quant());
  c.validate(source);
  return c;
}

int64_t EngramConfig::index_of(int64_t layer) const {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i] == layer) return int64_t(i);
  return -1;
}

namespace {

void require_positive(int64_t v, const char* field, const std::string& source) {
  MO_REQUIRE(v > 0, source, ": ", field, " must be positive, got ", v);
}
void require_at_most(int64_t v, int64_t hi, const char* field, const std::string& source) {
  MO_REQUIRE(v <= hi, source, ": ", field, " ", v, " is above the supported ", hi);
}

// Every size positive and under its bound.
void validate_sizes(const ModelConfig& c, const std::string& source) {
  auto pos = [&](int64_t v, const char* field) { require_positive(v, field, source); };
  auto at_most = [&](int64_t v, int64_t hi, const char* field) {
    require_at_most(v, hi, field, source);
  };
  pos(c.vocab_size, "vocab_size");
  pos(c.hidden_size, "hidden_size");
  pos(c.num_heads, "num_attention_heads");
  pos(c.q_lora_rank, "q_lora_rank");
  pos(c.o_groups, "o_groups");
  pos(c.o_lora_rank, "o_lora_rank");
  pos(c.sliding_window, "sliding_window");
  pos(c.n_experts, "n_routed_experts");
  pos(c.top_k, "num_experts_per_tok");
  pos(c.moe_inter, "moe_intermediate_size");
  pos(c.hc_mult, "hc_mult");
  pos(c.hc_sinkhorn_iters, "hc_sinkhorn_iters");
  // Upper bounds, so that every size computed from the config fits int64 with room to spare
  // (a tensor's elements at most 2^36, all weights' bytes under 2^62, a cache under 2^60) and the
  // per-layer and per-expert tables every rank keeps stay small. Far above any DeepSeek model.
  pos(c.fp8_block_rows, "weight_block_size[0]");
  pos(c.fp8_block_cols, "weight_block_size[1]");
  const int64_t kDim = int64_t(1) << 18;
  at_most(c.vocab_size, (int64_t(1) << 31) - 1, "vocab_size");  // token ids are int32
  at_most(c.num_layers, 512, "num_hidden_layers");
  at_most(c.n_experts, 1024, "n_routed_experts");
  at_most(c.hc_mult, 1024, "hc_mult");
  at_most(c.hc_sinkhorn_iters, 1 << 16, "hc_sinkhorn_iters");
  at_most(c.max_position_embeddings, (int64_t(1) << 31) - 1, "max_position_embeddings");
  for (auto [v, f] : {std::pair{c.hidden_size, "hidden_size"}, {c.num_heads, "num_attention_heads"},
                      {c.head_dim, "head_dim"}, {c.q_lora_rank, "q_lora_rank"}, {c.o_groups, "o_groups"},
                      {c.o_lora_rank, "o_lora_rank"}, {c.sliding_window, "sliding_window"},
                      {c.moe_inter, "moe_intermediate_size"}, {c.index_n_heads, "index_n_heads"},
                      {c.index_head_dim, "index_head_dim"}, {c.csa_rate, "compress_rate_csa"},
                      {c.hca_rate, "compress_rate_hca"}, {c.fp8_block_rows, "weight_block_size[0]"},
                      {c.fp8_block_cols, "weight_block_size[1]"}, {c.engram.head_dim, "engram_head_dim"}})
    at_most(v, kDim, f);
}

// The heads, RoPE, routing and the compressed layers' rates and indexer.
void validate_attention(const ModelConfig& c, const std::string& source) {
  auto pos = [&](int64_t v, const char* field) { require_positive(v, field, source); };
  MO_REQUIRE(c.top_k <= c.n_experts, source, ": num_experts_per_tok (", c.top_k,
             ") exceeds n_routed_experts (", c.n_experts, ")");
  MO_REQUIRE(c.n_shared_experts == 0 || c.n_shared_experts == 1, source,
             ": n_shared_experts must be 0 or 1, got ", c.n_shared_experts);
  MO_REQUIRE(c.num_heads % c.o_groups == 0, source, ": num_attention_heads (", c.num_heads,
             ") must be a multiple of o_groups (", c.o_groups, ")");
  MO_REQUIRE(c.rope_dim > 0 && c.rope_dim % 2 == 0 && c.rope_dim <= c.head_dim, source,
             ": rope dims (head_dim * partial_rotary_factor = ", c.rope_dim,
             ") must be even and within head_dim");
  MO_REQUIRE(c.rope_compress.dim == c.rope_dim, source,
             ": rope main and compress must rotate the same number of dims");
  MO_REQUIRE(c.scoring_func == "sqrtsoftplus" || c.scoring_func == "sigmoid", source,
             ": scoring_func '", c.scoring_func, "' is not supported (sqrtsoftplus, sigmoid)");
  bool any_csa = false, any_comp = false;
  for (auto k : c.attn) {
    any_csa |= k == AttnKind::CSA || k == AttnKind::Shared;  // both run an indexer
    any_comp |= k != AttnKind::Sliding;
  }
  if (any_comp) {
    pos(c.csa_rate, "compress_rate_csa");
    pos(c.hca_rate, "compress_rate_hca");
  }
  if (any_csa) {
    pos(c.index_n_heads, "index_n_heads");
    pos(c.index_head_dim, "index_head_dim");
    pos(c.index_topk, "index_topk");
    MO_REQUIRE(c.rope_dim <= c.index_head_dim, source, ": index_head_dim (", c.index_head_dim,
               ") is smaller than the rope dims (", c.rope_dim, ")");
  }
}

void validate_engram(const ModelConfig& c, const std::string& source) {
  auto pos = [&](int64_t v, const char* field) { require_positive(v, field, source); };
  auto at_most = [&](int64_t v, int64_t hi, const char* field) {
    require_at_most(v, hi, field, source);
  };
  const EngramConfig& engram = c.engram;
  if (!engram.enabled()) return;
  for (size_t i = 0; i < engram.layers.size(); ++i) {
    const int64_t l = engram.layers[i];
    MO_REQUIRE(l >= 0 && l < c.num_layers, source, ": engram_layer_ids: layer ", l,
               " is outside [0, ", c.num_layers, ")");
    MO_REQUIRE(i == 0 || l > engram.layers[i - 1], source,
               ": engram_layer_ids must be increasing and distinct");
  }
  MO_REQUIRE(engram.max_ngram >= 2 && engram.max_ngram <= 8, source,
             ": engram_max_ngram_size must be in [2, 8], got ", engram.max_ngram);
  pos(engram.n_heads, "engram_n_heads");
  pos(engram.head_dim, "engram_head_dim");
  pos(engram.compressed_vocab, "engram_compressed_vocab_size");
  MO_REQUIRE(engram.prime_start >= 2, source, ": engram_vocab_size must be at least 2");
  // Each (order, head) column searches a prime from engram_vocab_size: bounded work and rows.
  at_most(engram.n_heads, 256, "engram_n_heads");
  at_most(engram.prime_start, int64_t(1) << 36, "engram_vocab_size");
  at_most(engram.compressed_vocab, (int64_t(1) << 31) - 1, "engram_compressed_vocab_size");
  MO_REQUIRE(engram.pad_token_id >= 0 && engram.pad_token_id < c.vocab_size, source,
             ": engram_pad_token_id ", engram.pad_token_id, " is outside the vocabulary");
  MO_REQUIRE(engram.num_embeddings.empty() || engram.num_embeddings.size() == engram.layers.size(),
             source, ": engram_num_embeddings has ", engram.num_embeddings.size(),
             " entries for ", engram.layers.size(), " Engram layers");
  if (!engram.num_embeddings.empty()) {
    const auto hp = engram_hash_params(engram.layers, engram.max_ngram, engram.n_heads,
                                       engram.prime_start, engram.compressed_vocab);
    for (size_t k = 0; k < hp.size(); ++k)
      MO_REQUIRE(engram.num_embeddings[k] == hp[k].rows, source, ": engram_num_embeddings[", k,
                 "] is ", engram.num_embeddings[k], " but the primes searched from "
                 "engram_vocab_size give ", hp[k].rows, " rows");
  }
}

}  // namespace

void ModelConfig::validate(const std::string& source) const {
  validate_sizes(*this, source);
  validate_attention(*this, source);
  if (v41()) validate_shared_attn(*this, source);
  validate_engram(*this, source);
  MO_REQUIRE(eos_token_id >= 0 && eos_token_id < vocab_size, source, ": eos_token_id ",
             eos_token_id, " is outside the vocabulary [0, ", vocab_size, ")");
  MO_REQUIRE(rms_norm_eps > 0, source, ": rms_norm_eps must be positive, got ", rms_norm_eps);
  MO_REQUIRE(hc_eps >= 0, source, ": hc_eps must be at least 0, got ", hc_eps);
  require_positive(max_position_embeddings, "max_position_embeddings", source);
}

}  // namespace modelone
