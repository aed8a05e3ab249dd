// DeepSeek-V4.1's top-k for an index source of compress ratio r (docs/architecture.md, "Shared
// top-k"). Entry s's score for the query at position p is V4's,
//   score = sum_h w[h] * ReLU(q[h] . k[s]) / sqrt(index_head_dim),
// over the keys of the layer's kv source; entries s >= (p + 1) / r are invisible. With a
// candidate source the top-k has two levels:
//   the candidate source scores blocks of candidate_block_size entries by their best entry and
//   keeps candidate_topk_blocks of them: the block of the newest visible entry always, then the
//   best (ties to the lower block); its own top-k is not masked;
//   every index source after it scores only the entries of those blocks.
// Picks: the top min(index_topk, entries scored), best first, ties to the lower global index.
// (The reference would keep -inf picks when fewer candidates than index_topk are visible; here
// a pick is always a candidate.)
#pragma once
#include <cstdint>
#include <vector>

#include "model/config/config.h"
#include "model/blocks/indexer.h"
#include "model/cache/layer_cache.h"

namespace modelone {

// Per query, its candidate blocks in increasing id order.
struct BlockPicks {
  int64_t per = 0;             // candidate_topk_blocks
  std::vector<int32_t> ids;    // [T, per]
  std::vector<int32_t> count;  // [T]
};

// Prefill: keys[n_keys, Di] are the kv source's keys of windows 0 .. n_keys - 1 in global order.
// The candidate source fills *blocks; a layer after it reads them. top[T, index_topk], count[T].
// The T queries are rows [r0, r0 + T) of iq.
void shared_select(const ModelConfig& cfg, int64_t layer, const IndexerQueries& iq, int64_t T,
                   const int64_t* pos, const float* keys, int64_t n_keys, BlockPicks* blocks,
                   int32_t* top, int32_t* count, int64_t r0 = 0);

// Decode, one query (q[nI * Di], w[nI]) at pos against the keys this rank holds (any dtype):
//   out       up to index_topk best local (score, global index), masked to `blocks` (increasing
//             global block ids) when the layer uses candidates;
//   block_out the candidate source: up to candidate_topk_blocks (best local score, block id).
void shared_candidates(const ModelConfig& cfg, int64_t layer, const float* q, const float* w,
                       int64_t pos, const EntryStore& keys, const std::vector<int32_t>* blocks,
                       std::vector<Candidate>* out, std::vector<Candidate>* block_out);

// The candidate blocks of the query at pos from every rank's block_out: a block scores the best
// of its ranks' partial maxima (the rank holding its best entry always sends it), the newest
// visible block is pinned. Increasing ids.
std::vector<int32_t> merge_blocks(const ModelConfig& cfg, int64_t pos, int64_t ratio,
                                  const std::vector<Candidate>& all);

// The block choice over full block scores bscore[nb_all] (-inf: nothing visible), the newest
// block `newest` pinned (-1: none): up to k ids, increasing. Shared by both forms above.
int64_t pick_blocks(const float* bscore, int64_t nb_all, int64_t newest, int64_t k, int32_t* ids);

}  // namespace modelone
