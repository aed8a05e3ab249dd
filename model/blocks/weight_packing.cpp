#include "model/blocks/weight_packing.h"

#include <initializer_list>

#include "model/kernels/panel_weights.h"

namespace modelone {

namespace {
void pack(std::initializer_list<Weight*> ws, PackedWeights& n) {
  for (Weight* t : ws)
    if (pack_weight_panels(*t)) n.tensors += 1, n.bytes += int64_t(t->nbytes());
}
}  // namespace

PackedWeights pack_expert_panels(ModelWeights& w) {
  PackedWeights n;
  for (auto& l : w.layers)
    for (auto& e : l.experts) pack({&e.w1, &e.w2, &e.w3}, n);
  w.repacked += size_t(n.bytes);
  return n;
}

PackedWeights pack_dense_panels(const ModelConfig& cfg, ModelWeights& w) {
  PackedWeights n;
  for (auto& l : w.layers) {
    AttnWeights& a = l.attn;
    pack({&a.wq_a, &a.wq_b, &a.wkv, &a.wo_a, &a.wo_b, &a.idx_wq_b, &a.idx_weights_proj,
          &a.idx_wk, &l.shared.w1, &l.shared.w2, &l.shared.w3, &l.engram.wkv}, n);
    if (!cfg.v41())  // V4.1's compressors are read by linear_fp32 (attention_v41.cpp)
      pack({&a.compressor.wkv, &a.compressor.wgate, &a.idx_compressor.wkv,
            &a.idx_compressor.wgate}, n);
  }
  if (w.head.data != w.embed.data) pack({&w.head}, n);  // a tied head is the embedding's rows
  w.repacked += size_t(n.bytes);
  return n;
}

}  // namespace modelone
