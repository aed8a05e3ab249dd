// KV compressors (CSA and HCA) and the indexer's key compressor: every `rate` tokens close a
// window, pooled into one entry by a per-channel softmax over the window's rows of
// (gate + position bias), then RMSNorm and RoPE at the window's first (global) position.
//   HCA: window w pools its own rate rows; projections are width wide.
//   CSA: projections are 2*width wide (series a | series b); window w pools 2*rate rows:
//        [series a of window w-1 ; series b of window w]. Window 0's first half is empty.
//   V4.1: width wide, no overlap and no position bias; ratio 1 has no gate (one row per entry).
// Window w closes at global position (w + 1) * rate - 1 and its entry has global index w,
// whichever rank or chunk feeds that position.
#pragma once
#include <cstdint>
#include <vector>

#include "model/cache/layer_cache.h"
#include "model/kernels/rope.h"
#include "model/io/model_weights.h"

namespace modelone {

// Feed raw projection rows kv[T, pw], gate[T, pw] (pw = st.proj_width(); gate without position
// bias) of positions st.end() .. st.end() + T - 1. Each window that closes appends its entry to
// `out` under its global window index. Returns the number of entries emitted.
int64_t compressor_feed(CompressorState& st, const CompressorWeights& w, const Rope& rope,
                        float eps, const float* kv, const float* gate, int64_t T, EntryStore& out);

// The same, for V4.1's kv sources: each closing window's entry, normed but before RoPE (the
// indexer keys derive from it), appended to latents[n, width] with its global index. Without
// an ape (V4.1 has none) the gate has no position bias.
int64_t compressor_feed_latents(CompressorState& st, const CompressorWeights& w, float eps,
                                const float* kv, const float* gate, int64_t T,
                                std::vector<float>* latents, std::vector<int32_t>* index);

// Project h[T, D] with the compressor's wkv / wgate into kv[T, pw], gate[T, pw] (gate zero
// when the compressor has no wgate: V4.1's ratio 1).
void compressor_project(const CompressorWeights& w, int64_t pw, const float* h, int64_t T,
                        float* kv, float* gate);

}  // namespace modelone
