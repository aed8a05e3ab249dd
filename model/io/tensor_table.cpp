#include "model/io/tensor_table.h"

#include "model/base/check.h"
#include "model/io/model_weights.h"

namespace modelone {

namespace {

using C = const ModelConfig&;
using Shape = std::vector<int64_t>;

bool always(C, int64_t) { return true; }
// V4's compressed layers (CSA, HCA); V4.1's compressors live on its kv sources only.
bool compressed(C c, int64_t l) {
  return c.attn[size_t(l)] == AttnKind::CSA || c.attn[size_t(l)] == AttnKind::HCA;
}
bool csa(C c, int64_t l) { return c.attn[size_t(l)] == AttnKind::CSA; }
bool kv_source(C c, int64_t l) { return c.v41() && c.shared.is_kv_source(l); }
// V4.1 pools ratio > 1 groups with a softmax gate; ratio 1 has none.
bool gated_source(C c, int64_t l) { return kv_source(c, l) && c.shared.ratio[size_t(l)] > 1; }
bool any_compressor(C c, int64_t l) { return compressed(c, l) || kv_source(c, l); }
bool any_gate(C c, int64_t l) { return compressed(c, l) || gated_source(c, l); }
// Indexer queries: V4's CSA layers and V4.1's index sources.
bool indexer_queries(C c, int64_t l) { return csa(c, l) || (c.v41() && c.shared.is_index_source(l)); }
bool v4_head(C c, int64_t) { return !c.v41(); }  // V4.1 collapses with the last FFN's pre-mix
bool hash_moe(C c, int64_t l) { return c.mlp[size_t(l)] == MlpKind::HashMoE; }
bool topk_moe(C c, int64_t l) { return c.mlp[size_t(l)] == MlpKind::MoE; }
bool shared_expert(C c, int64_t) { return c.n_shared_experts > 0; }
bool untied_head(C c, int64_t) { return !c.tie_word_embeddings; }
bool engram(C c, int64_t l) { return c.engram.index_of(l) >= 0; }

// Compressor width: CSA pools two overlapping series, so its projections are twice as wide
// (V4.1's compressors pool one series).
int64_t comp_width(C c, int64_t l) { return csa(c, l) ? 2 * c.head_dim : c.head_dim; }
int64_t hc_mix(C c) { return (2 + c.hc_mult) * c.hc_mult; }

constexpr Init kMatrix{0.f, 0.02f};
constexpr Init kNormW{1.f, 0.05f};   // norm weights around 1
constexpr Init kSmall{0.f, 0.05f};   // biases, sinks, mHC bases
constexpr Init kScale{1.f, 0.05f};   // mHC scales
constexpr Init kTid2eid{0.f, 0.f, true};

#define SLOT(expr) [](ModelWeights & w, int64_t l, int64_t e) -> Weight* { \
    (void)l; (void)e; return &(expr); }
#define LAYER(field) SLOT(w.layers[size_t(l)].field)
#define EXPERT(field) SLOT(w.layers[size_t(l)].experts[size_t(e)].field)

const std::vector<TensorSpec> kTable = {
    // Global
    {"model.embed_tokens.weight", "token embedding", Scope::Global, always,
     [](C c, int64_t) { return Shape{c.vocab_size, c.hidden_size}; }, kMatrix, SLOT(w.embed)},
    {"head.weight", "LM head", Scope::Global, untied_head,
     [](C c, int64_t) { return Shape{c.vocab_size, c.hidden_size}; }, kMatrix, SLOT(w.head)},
    {"model.norm.weight", "final RMSNorm", Scope::Global, always,
     [](C c, int64_t) { return Shape{c.hidden_size}; }, kNormW, SLOT(w.norm)},
    {"model.hc_head.hc_fn", "mHC head mix projection", Scope::Global, v4_head,
     [](C c, int64_t) { return Shape{c.hc_mult, c.hc_mult * c.hidden_size}; }, kMatrix,
     SLOT(w.hc_head_fn)},
    {"model.hc_head.hc_base", "mHC head bias", Scope::Global, v4_head,
     [](C c, int64_t) { return Shape{c.hc_mult}; }, kSmall, SLOT(w.hc_head_base)},
    {"model.hc_head.hc_scale", "mHC head scale", Scope::Global, v4_head,
     [](C, int64_t) { return Shape{1}; }, kScale, SLOT(w.hc_head_scale)},

    // mHC and block norms
    {"model.layers.{L}.attn_norm.weight", "attention input RMSNorm", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.hidden_size}; }, kNormW, LAYER(attn_norm)},
    {"model.layers.{L}.ffn_norm.weight", "FFN input RMSNorm", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.hidden_size}; }, kNormW, LAYER(ffn_norm)},
    {"model.layers.{L}.hc_attn_fn", "mHC attention-site mix projection", Scope::Layer, always,
     [](C c, int64_t) { return Shape{hc_mix(c), c.hc_mult * c.hidden_size}; }, kMatrix,
     LAYER(hc_attn_fn)},
    {"model.layers.{L}.hc_attn_base", "mHC attention-site bias", Scope::Layer, always,
     [](C c, int64_t) { return Shape{hc_mix(c)}; }, kSmall, LAYER(hc_attn_base)},
    {"model.layers.{L}.hc_attn_scale", "mHC attention-site scales", Scope::Layer, always,
     [](C, int64_t) { return Shape{3}; }, kScale, LAYER(hc_attn_scale)},
    {"model.layers.{L}.hc_ffn_fn", "mHC FFN-site mix projection", Scope::Layer, always,
     [](C c, int64_t) { return Shape{hc_mix(c), c.hc_mult * c.hidden_size}; }, kMatrix,
     LAYER(hc_ffn_fn)},
    {"model.layers.{L}.hc_ffn_base", "mHC FFN-site bias", Scope::Layer, always,
     [](C c, int64_t) { return Shape{hc_mix(c)}; }, kSmall, LAYER(hc_ffn_base)},
    {"model.layers.{L}.hc_ffn_scale", "mHC FFN-site scales", Scope::Layer, always,
     [](C, int64_t) { return Shape{3}; }, kScale, LAYER(hc_ffn_scale)},

    // Attention
    {"model.layers.{L}.attn.wq_a.weight", "q down-projection (q-LoRA)", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.q_lora_rank, c.hidden_size}; }, kMatrix, LAYER(attn.wq_a)},
    {"model.layers.{L}.attn.q_norm.weight", "q-LoRA RMSNorm", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.q_lora_rank}; }, kNormW, LAYER(attn.q_norm)},
    {"model.layers.{L}.attn.wq_b.weight", "q up-projection", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.q_dim(), c.q_lora_rank}; }, kMatrix, LAYER(attn.wq_b)},
    {"model.layers.{L}.attn.wkv.weight", "shared KV projection", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.head_dim, c.hidden_size}; }, kMatrix, LAYER(attn.wkv)},
    {"model.layers.{L}.attn.norm.weight", "KV RMSNorm", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.head_dim}; }, kNormW, LAYER(attn.norm)},
    {"model.layers.{L}.attn.wo_a.weight", "grouped output projection (per group)", Scope::Layer,
     always, [](C c, int64_t) { return Shape{c.o_groups * c.o_lora_rank, c.q_dim() / c.o_groups}; },
     kMatrix, LAYER(attn.wo_a)},
    {"model.layers.{L}.attn.wo_b.weight", "output mix projection", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.hidden_size, c.o_groups * c.o_lora_rank}; }, kMatrix,
     LAYER(attn.wo_b)},
    {"model.layers.{L}.attn.attn_sink", "per-head attention sink logit", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.num_heads}; }, kSmall, LAYER(attn.attn_sink)},

    // Compressor (CSA: two overlapping series, HCA: one)
    {"model.layers.{L}.attn.compressor.wkv.weight", "compressor KV projection", Scope::Layer,
     any_compressor, [](C c, int64_t l) { return Shape{comp_width(c, l), c.hidden_size}; }, kMatrix,
     LAYER(attn.compressor.wkv)},
    {"model.layers.{L}.attn.compressor.wgate.weight", "compressor gate projection", Scope::Layer,
     any_gate, [](C c, int64_t l) { return Shape{comp_width(c, l), c.hidden_size}; }, kMatrix,
     LAYER(attn.compressor.wgate)},
    {"model.layers.{L}.attn.compressor.ape", "compressor position bias", Scope::Layer, compressed,
     [](C c, int64_t l) { return Shape{c.compress_rate(l), comp_width(c, l)}; }, kMatrix,
     LAYER(attn.compressor.ape)},
    {"model.layers.{L}.attn.compressor.norm.weight", "compressed entry RMSNorm", Scope::Layer,
     any_compressor, [](C c, int64_t) { return Shape{c.head_dim}; }, kNormW,
     LAYER(attn.compressor.norm)},

    // Lightning indexer (CSA)
    {"model.layers.{L}.attn.indexer.compressor.wkv.weight", "indexer key projection", Scope::Layer,
     csa, [](C c, int64_t) { return Shape{2 * c.index_head_dim, c.hidden_size}; }, kMatrix,
     LAYER(attn.idx_compressor.wkv)},
    {"model.layers.{L}.attn.indexer.compressor.wgate.weight", "indexer gate projection",
     Scope::Layer, csa, [](C c, int64_t) { return Shape{2 * c.index_head_dim, c.hidden_size}; },
     kMatrix, LAYER(attn.idx_compressor.wgate)},
    {"model.layers.{L}.attn.indexer.compressor.ape", "indexer position bias", Scope::Layer, csa,
     [](C c, int64_t) { return Shape{c.csa_rate, 2 * c.index_head_dim}; }, kMatrix,
     LAYER(attn.idx_compressor.ape)},
    {"model.layers.{L}.attn.indexer.compressor.norm.weight", "indexer key RMSNorm", Scope::Layer,
     csa, [](C c, int64_t) { return Shape{c.index_head_dim}; }, kNormW,
     LAYER(attn.idx_compressor.norm)},
    // V4.1: the indexer keys of a kv source, from its compressor's latent (no compressor of
    // their own, no Hadamard)
    {"model.layers.{L}.attn.indexer.wk.weight", "indexer key projection (V4.1)", Scope::Layer,
     kv_source, [](C c, int64_t) { return Shape{c.index_head_dim, c.head_dim}; }, kMatrix,
     LAYER(attn.idx_wk)},
    {"model.layers.{L}.attn.indexer.k_norm.weight", "indexer key RMSNorm (V4.1)", Scope::Layer,
     kv_source, [](C c, int64_t) { return Shape{c.index_head_dim}; }, kNormW,
     LAYER(attn.idx_k_norm)},
    {"model.layers.{L}.attn.indexer.wq_b.weight", "indexer query projection", Scope::Layer,
     indexer_queries,
     [](C c, int64_t) { return Shape{c.index_n_heads * c.index_head_dim, c.q_lora_rank}; },
     kMatrix, LAYER(attn.idx_wq_b)},
    {"model.layers.{L}.attn.indexer.weights_proj.weight", "indexer head weights", Scope::Layer,
     indexer_queries, [](C c, int64_t) { return Shape{c.index_n_heads, c.hidden_size}; }, kMatrix,
     LAYER(attn.idx_weights_proj)},

    // MoE
    {"model.layers.{L}.ffn.gate.weight", "router", Scope::Layer, always,
     [](C c, int64_t) { return Shape{c.n_experts, c.hidden_size}; }, kMatrix, LAYER(gate)},
    {"model.layers.{L}.ffn.gate.bias", "router selection bias", Scope::Layer, topk_moe,
     [](C c, int64_t) { return Shape{c.n_experts}; }, {0.f, 0.1f}, LAYER(gate_bias)},
    {"model.layers.{L}.ffn.gate.tid2eid", "hash routing table (token -> experts)", Scope::Layer,
     hash_moe, [](C c, int64_t) { return Shape{c.vocab_size, c.top_k}; }, kTid2eid, LAYER(tid2eid),
     true},
    {"model.layers.{L}.ffn.experts.{E}.w1.weight", "routed expert gate", Scope::Expert, always,
     [](C c, int64_t) { return Shape{c.moe_inter, c.hidden_size}; }, kMatrix, EXPERT(w1)},
    {"model.layers.{L}.ffn.experts.{E}.w2.weight", "routed expert down", Scope::Expert, always,
     [](C c, int64_t) { return Shape{c.hidden_size, c.moe_inter}; }, kMatrix, EXPERT(w2)},
    {"model.layers.{L}.ffn.experts.{E}.w3.weight", "routed expert up", Scope::Expert, always,
     [](C c, int64_t) { return Shape{c.moe_inter, c.hidden_size}; }, kMatrix, EXPERT(w3)},
    {"model.layers.{L}.ffn.shared_experts.w1.weight", "shared expert gate", Scope::Layer,
     shared_expert, [](C c, int64_t) { return Shape{c.moe_inter, c.hidden_size}; }, kMatrix,
     LAYER(shared.w1)},
    {"model.layers.{L}.ffn.shared_experts.w2.weight", "shared expert down", Scope::Layer,
     shared_expert, [](C c, int64_t) { return Shape{c.hidden_size, c.moe_inter}; }, kMatrix,
     LAYER(shared.w2)},
    {"model.layers.{L}.ffn.shared_experts.w3.weight", "shared expert up", Scope::Layer,
     shared_expert, [](C c, int64_t) { return Shape{c.moe_inter, c.hidden_size}; }, kMatrix,
     LAYER(shared.w3)},
    // Engram (V4.1): the fused key/value projection and the gate's scales
    {"model.layers.{L}.engram.wkv.weight", "Engram key/value projection", Scope::Layer, engram,
     [](C c, int64_t) { return Shape{(c.hc_mult + 1) * c.hidden_size, c.engram.dim()}; }, kMatrix,
     LAYER(engram.wkv)},
    {"model.layers.{L}.engram.q_weight", "Engram gate query scales", Scope::Layer, engram,
     [](C c, int64_t) { return Shape{c.hc_mult, c.hidden_size}; }, kNormW, LAYER(engram.q_weight)},
    {"model.layers.{L}.engram.k_weight", "Engram gate key scales", Scope::Layer, engram,
     [](C c, int64_t) { return Shape{c.hc_mult, c.hidden_size}; }, kNormW, LAYER(engram.k_weight)},
};

}  // namespace

const std::vector<TensorSpec>& tensor_table() { return kTable; }

std::string expand_name(const char* pattern, int64_t layer, int64_t expert) {
  std::string s = pattern;
  auto put = [&](const char* key, int64_t v) {
    auto p = s.find(key);
    if (p != std::string::npos) s.replace(p, 3, std::to_string(v));
  };
  put("{L}", layer);
  put("{E}", expert);
  return s;
}

std::string release_name(const std::string& n) {
  auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
  if (starts("model.embed_tokens.")) return "embed." + n.substr(19);
  if (starts("model.hc_head.hc_")) return "hc_head_" + n.substr(17);
  if (!starts("model.")) return n;  // head.weight
  std::string r = n.substr(6);
  const auto at = r.find(".attn.norm.");
  if (starts("model.layers.") && at != std::string::npos) r.replace(at, 11, ".attn.kv_norm.");
  return r;
}

std::vector<TensorInstance> enumerate_tensors(const ModelConfig& cfg) {
  std::vector<TensorInstance> out;
  for (auto& spec : kTable) {
    if (spec.scope == Scope::Global) {
      if (spec.present(cfg, 0)) out.push_back({&spec, spec.pattern, spec.shape(cfg, 0), -1, -1});
      continue;
    }
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      if (!spec.present(cfg, l)) continue;
      if (spec.scope == Scope::Layer) {
        out.push_back({&spec, expand_name(spec.pattern, l, 0), spec.shape(cfg, l), l, -1});
      } else {
        for (int64_t e = 0; e < cfg.n_experts; ++e)
          out.push_back({&spec, expand_name(spec.pattern, l, e), spec.shape(cfg, l), l, e});
      }
    }
  }
  return out;
}

}  // namespace modelone
