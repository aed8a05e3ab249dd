// KV compressors (CSA and HCA) and the indexer's key compressor: every `rate` tokens close a
// window, pooled into one entry by a per-channel softmax over the window's rows of
// (gate + position bias), then RMSNorm and RoPE at the window's first position.
//   HCA: window w pools its own rate rows; projections are width wide.
//   CSA: projections are 2*width wide (series a | series b); window w pools 2*rate rows:
//        [series a of window w-1 ; series b of window w]. Window 0's first half is empty.
#pragma once
#include <cstdint>

#include "model/layer_cache.h"
#include "model/rope.h"
#include "model/weights.h"

namespace modelone {

// Feed T consecutive rows of projections kv[T, pw], gate[T, pw] (pw = st.proj_width(); gate
// without position bias). Each window that closes appends one entry to `out`.
// Returns the number of entries emitted.
int64_t compressor_feed(CompressorState& st, const CompressorWeights& w, const Rope& rope,
                        float eps, const float* kv, const float* gate, int64_t T, KvStore& out);

// Project h[T, D] with the compressor's wkv / wgate and feed the rows.
int64_t compressor_project_and_feed(CompressorState& st, const CompressorWeights& w,
                                    const Rope& rope, float eps, const float* h, int64_t T,
                                    KvStore& out);

}  // namespace modelone
