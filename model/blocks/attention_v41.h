// DeepSeek-V4.1's kv sources (docs/architecture.md, "Shared caches"): the only layers
// that compress. A source pools groups of `ratio` tokens (ratio 2: a softmax gate per channel;
// ratio 1: one row, no gate; no position bias, no overlap) into a latent [Dh], normed, and from
// each latent of group j makes
//   the indexer key  k_norm(wk latent) [Di], RoPE at j * ratio, FP4 (ue8m0, blocks of 32);
//   the entry        latent, RoPE at j * ratio, FP4 (e4m3 scales, blocks of 16);
// (FP4 only with cfg.fake_quant). The layers after it read these stores instead of their own.
#pragma once
#include <cstdint>

#include "model/blocks/attention.h"

namespace modelone {

// The compressor's projections of h[T, D] into p->comp_kv, p->comp_gate [T, Dh] (fp32 as the
// reference pools in fp32; the gate zero at ratio 1).
void shared_source_project(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                           const float* h, int64_t T, AttnProj* p);

// Feeds segment seg's rows of the projections through the compressor; each group that closes
// appends its entry to `entries` and its key to `keys` under the group's global index.
void shared_source_feed(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                        const Rope& rope, const AttnProj& p, const Segment& seg, LayerCache& cache,
                        EntryStore& entries, EntryStore& keys);

// The entries and keys of latents[n, Dh] (closed groups of global indices idx[n]), latents
// modified in place into the entries.
void shared_source_entries(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                           const Rope& rope, float* latents, const int32_t* idx, int64_t n,
                           EntryStore& entries, EntryStore& keys);

}  // namespace modelone
