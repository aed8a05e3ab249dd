#include "dist/engine.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "model/attention.h"
#include "model/check.h"
#include "model/gemm.h"
#include "model/kernels.h"
#include "model/mhc.h"

namespace modelone {

Engine::Engine(const ModelConfig& cfg, const RankGrid& grid, ModelWeights weights,
               std::vector<ExpertPlacement> placement, EngineOptions opt)
    : cfg_(cfg), grid_(grid), w_(std::move(weights)), opt_(opt), rope_main_(cfg.rope_main),
      rope_compress_(cfg.rope_compress), moe_(cfg, grid.ep_comm, std::move(placement), opt.moe) {
  if (const char* f = std::getenv("MODELONE_INJECT_FAULT"))
    MO_REQUIRE(std::sscanf(f, "%d:%ld", &fault_rank_, &fault_layer_) == 2,
               "MODELONE_INJECT_FAULT must be RANK:LAYER, got '", f, "'");
  reset();
}

void Engine::reset() {
  caches_ = make_layer_caches(cfg_, opt_.kv_dtype);
  pos_ = 0;
}

size_t Engine::cache_bytes() const {
  size_t b = 0;
  for (auto& c : caches_) b += c.bytes();
  return b;
}

void Engine::layer_forward(int64_t l, const int32_t* tokens, int64_t T, float* x) {
  const int64_t D = cfg_.hidden_size, hc = cfg_.hc_mult;
  const LayerWeights& lw = w_.layers[size_t(l)];
  const float eps = float(cfg_.rms_norm_eps);
  if (l == fault_layer_ && grid_.world.rank() == fault_rank_)
    fail("injected fault in layer ", l, " (MODELONE_INJECT_FAULT)");
  h_.resize(size_t(T * D));
  out_.resize(size_t(T * D));
  post_.resize(size_t(T * hc));
  comb_.resize(size_t(T * hc * hc));
  float *h = h_.data(), *out = out_.data(), *post = post_.data(), *comb = comb_.data();

  // Attention site.
  hc_pre(cfg_, {lw.hc_attn_fn, lw.hc_attn_base, lw.hc_attn_scale}, x, T, h, post, comb);
  const std::vector<float> an = lw.attn_norm.to_f32();
  rms_norm_rows(h, T, D, D, eps, an.data());
  if (T > 0) {
    const Rope& rope = cfg_.attn[size_t(l)] == AttnKind::Sliding ? rope_main_ : rope_compress_;
    attention_forward(cfg_, l, lw.attn, rope, h, T, pos_, caches_[size_t(l)], out, &attn_scratch_);
  }
  hc_post(T, hc, D, out, post, comb, x);

  // FFN site: the MoE runs over the ep group even when this rank has no tokens.
  hc_pre(cfg_, {lw.hc_ffn_fn, lw.hc_ffn_base, lw.hc_ffn_scale}, x, T, h, post, comb);
  const std::vector<float> fn = lw.ffn_norm.to_f32();
  rms_norm_rows(h, T, D, D, eps, fn.data());
  moe_.forward(l, lw, h, T, tokens, out);
  hc_post(T, hc, D, out, post, comb, x);
}

void Engine::forward(const int32_t* tokens, int64_t T, bool all_logits,
                     std::vector<float>* logits) {
  const int64_t D = cfg_.hidden_size, hc = cfg_.hc_mult, V = cfg_.vocab_size;
  for (int64_t t = 0; t < T; ++t)
    MO_REQUIRE(tokens[t] >= 0 && tokens[t] < V, "token id ", tokens[t], " at position ", pos_ + t,
               " is outside the vocabulary [0, ", V, ")");
  // Residual streams x[T, hc, D]: the embedding copied into every stream.
  x_.resize(size_t(T * hc * D));
  float* x = x_.data();
  for (int64_t t = 0; t < T; ++t) {
    w_.embed.rows_f32(tokens[t], 1, x + t * hc * D);
    for (int64_t i = 1; i < hc; ++i)
      std::memcpy(x + (t * hc + i) * D, x + t * hc * D, size_t(D) * 4);
  }
  if (opt_.capture_hidden) {
    hidden_.clear();
    hidden_.emplace_back(x, x + T * hc * D);
  }
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    layer_forward(l, tokens, T, x);
    if (opt_.capture_hidden) hidden_.emplace_back(x, x + T * hc * D);
  }
  pos_ += T;
  if (T == 0) return;

  // Final hyper head, norm and LM head, on the rows whose logits are wanted.
  const int64_t first = all_logits ? 0 : T - 1, n = T - first;
  y_.resize(size_t(n * D));
  float* y = y_.data();
  hc_head(cfg_, w_.hc_head_fn, w_.hc_head_base, w_.hc_head_scale, x + first * hc * D, n, y);
  const std::vector<float> nw = w_.norm.to_f32();
  rms_norm_rows(y, n, D, D, float(cfg_.rms_norm_eps), nw.data());
  if (opt_.capture_hidden) hidden_.emplace_back(y, y + n * D);
  logits->resize(size_t(n * V));
  linear(y, n, D, w_.head, 0, V, logits->data(), V);
}

}  // namespace modelone
