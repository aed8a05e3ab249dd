#include "model/blocks/attention_v41.h"

#include "model/base/check.h"
#include "model/blocks/compressor.h"
#include "model/kernels/fake_quant.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"

namespace modelone {

void shared_source_project(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                           const float* h, int64_t T, AttnProj* p) {
  const int64_t Dh = cfg.head_dim, D = cfg.hidden_size;
  p->comp_kv.resize(size_t(T * Dh));
  p->comp_gate.resize(size_t(T * Dh));
  const CompressorWeights& c = w.compressor;
  if (cfg.shared.ratio[size_t(layer)] == 1) {  // a plain projection, in the compute mode
    compressor_project(c, Dh, h, T, p->comp_kv.data(), p->comp_gate.data());
    return;
  }
  // Above ratio 1 the reference promotes wkv and wgate to fp32 and pools in fp32.
  linear_fp32(h, T, D, c.wkv, 0, Dh, p->comp_kv.data(), Dh);
  linear_fp32(h, T, D, c.wgate, 0, Dh, p->comp_gate.data(), Dh);
}

void shared_source_entries(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                           const Rope& rope, float* latents, const int32_t* idx, int64_t n,
                           EntryStore& entries, EntryStore& keys) {
  if (n == 0) return;
  const int64_t Dh = cfg.head_dim, Di = cfg.index_head_dim, r = cfg.shared.ratio[size_t(layer)];
  const bool fq = cfg.fake_quant;
  // Keys from the latents before RoPE: [n, Dh] -> [n, Di].
  std::vector<float> k(static_cast<size_t>(n * Di));
  linear(latents, n, Dh, w.idx_wk, 0, Di, k.data(), Di);
  const std::vector<float> kn = w.idx_k_norm.to_f32();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p0 = int64_t(idx[i]) * r;  // a group stands at its first token's position
    float* ki = k.data() + i * Di;
    rms_norm(ki, Di, float(cfg.rms_norm_eps), kn.data());
    rope.apply(ki, 1, Di, p0);
    float* e = latents + i * Dh;
    rope.apply(e, 1, Dh, p0);
    if (fq) {
      fake_quant_fp4_ue8m0(ki, Di, kIndexQuantBlock);
      fake_quant_fp4_e4m3(e, Dh, kEntryQuantBlock);
    }
  }
  entries.append(latents, n, idx);
  keys.append(k.data(), n, idx);
}

void shared_source_feed(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                        const Rope& rope, const AttnProj& p, const Segment& seg, LayerCache& cache,
                        EntryStore& entries, EntryStore& keys) {
  const int64_t Dh = cfg.head_dim;
  MO_CHECK(cache.comp.width == Dh && !cache.comp.overlap, "layer ", layer, " is not a kv source");
  static thread_local std::vector<float> latents;
  static thread_local std::vector<int32_t> idx;
  const int64_t n = compressor_feed_latents(cache.comp, w.compressor, float(cfg.rms_norm_eps),
                                            p.comp_kv.data() + seg.row * Dh,
                                            p.comp_gate.data() + seg.row * Dh, seg.n, &latents, &idx);
  shared_source_entries(cfg, layer, w, rope, latents.data(), idx.data(), n, entries, keys);
}

}  // namespace modelone
