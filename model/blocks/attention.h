// DeepSeek-V4 attention over rows of one sequence at global positions, in the steps the
// parallel runtime interleaves with communication (dist/cp_attention.h):
//   attn_project_keys     the shared KV row (K = V) and the compressors' raw projections: what
//                         a neighbouring block's window and compressors read
//   attn_project_latent   the q-LoRA latent and the indexer's queries, then
//   attn_project_heads    a range of query heads from the latent (per-head RMS norm, RoPE)
//   attn_advance          one segment of consecutive positions through the cache: its window
//                         keys, the ring, the compressors (new entries under global indices)
//   attn_attend           per-head partials (unnormalised output, running max, running sum) of
//                         each query over its window and compressed keys
//   attn_merge            partials of the same queries from several key sets combined, the
//                         attention sink applied exactly once
//   attn_output           inverse RoPE on the output, grouped low-rank output projection
#pragma once
#include <cstdint>
#include <vector>

#include "model/config/config.h"
#include "model/blocks/indexer.h"
#include "model/cache/layer_cache.h"
#include "model/kernels/rope.h"
#include "model/io/model_weights.h"

namespace modelone {

// Positions [pos, pos + n) of the sequence, held as rows [row, row + n) of a step's batch.
struct Segment {
  int64_t pos = 0, n = 0, row = 0;
};

struct AttnProj {
  std::vector<int64_t> pos;               // [T] global position of each row
  std::vector<float> kv;                  // [T, Dh] normed, roped, rounded to the cache dtype
  std::vector<float> comp_kv, comp_gate;  // [T, cw] compressor projections (CSA / HCA)
  std::vector<float> idx_kv, idx_gate;    // [T, 2 * Di] the indexer compressor's (CSA)
  std::vector<float> q_lat;               // [T, q_lora] normed q-LoRA latent
  std::vector<float> q;                   // [T, H * Dh] per-head normed, roped
  IndexerQueries iq;                      // CSA
};

// h[T, D] is the normed block input of rows at positions pos[T].
void attn_project_keys(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                       const Rope& rope, const float* h, int64_t T, const int64_t* pos,
                       DType cache_dtype, AttnProj* p);
// The queries in two parts, so the heads can be split over ranks: the q-LoRA latent
// (and the indexer's queries), then heads [h0, h0 + nh) of q from a latent q_lat[T, q_lora]
// into q[T, nh * Dh].
void attn_project_latent(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                         const Rope& rope, const float* h, int64_t T, AttnProj* p);
void attn_project_heads(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope,
                        const float* q_lat, int64_t T, const int64_t* pos, int64_t h0,
                        int64_t nh, float* q);

// The window keys of one segment's queries: the cached rows just before seg.pos, then the
// segment's own rows.
struct SegmentWindow {
  std::vector<float> rows;  // [n_prev + n, Dh]
  int64_t first_pos = 0;    // position of rows[0]
};

// Runs one segment through the cache, which must stand at seg.pos (cache.n_tokens): fills win,
// appends the rows to the window ring and feeds the compressors; each window closing in the
// segment appends its entry (and CSA indexer key) to the cache's stores, or to entries_out /
// keys_out when given (decode places new entries on other ranks).
void attn_advance(const ModelConfig& cfg, int64_t layer, const AttnWeights& w, const Rope& rope,
                  const AttnProj& p, const Segment& seg, LayerCache& cache, SegmentWindow* win,
                  EntryStore* entries_out = nullptr, EntryStore* keys_out = nullptr);

// Compressed keys of windows 0 .. n - 1 in global order, fp32, as a step's queries read them.
struct EntryTable {
  const float* rows = nullptr;
  int64_t n = 0;
};

// Per-head partial attention of T queries over some key set: o[T, H, Dh] = sum_s e^(l_s - mx) v_s
// (not normalised), mx[T, H] the largest logit (-inf when the set is empty), sum[T, H] the
// sum of e^(l_s - mx).
struct AttnPartials {
  std::vector<float> o, mx, sum;
  void resize(int64_t T, int64_t H, int64_t Dh);
};

// Every query of the step over its segment's window and its compressed keys: HCA all closed
// entries of its table, CSA the picks (global indices into the table, [T, index_topk], n_picks[T]
// valid). ents: one table for every segment (one sequence), or one per segment (a batch of
// sequences, each segment its own).
void attn_attend(const ModelConfig& cfg, int64_t layer, const AttnProj& p,
                 const std::vector<Segment>& segs, const std::vector<SegmentWindow>& wins,
                 const std::vector<EntryTable>& ents, const int32_t* picks, const int32_t* n_picks,
                 AttnPartials* out);

// One query, nh heads q[nh, Dh], over keys kw[nw, Dh] then kc[nc, Dh] (K = V): o[nh, Dh],
// mx[nh], sum[nh] as in AttnPartials. logits is scratch.
void attn_partial(const float* q, int64_t nh, int64_t Dh, const float* kw, int64_t nw,
                  const float* kc, int64_t nc, float* o, float* mx, float* sum,
                  std::vector<float>& logits);

// o[T, H, Dh] from the partials of the same queries over disjoint key sets, with the per-head
// sink as one more logit of the softmax, counted once:
//   M = max_i mx_i, o = sum_i e^(mx_i - M) o_i / (sum_i e^(mx_i - M) sum_i + e^(sink - M)).
// o may alias parts[0]->o.
void attn_merge(int64_t T, int64_t H, int64_t Dh, const float* sink,
                const std::vector<const AttnPartials*>& parts, float* o);

// out[T, D] from o[T, H * Dh] (o is modified: inverse RoPE at each row's position).
void attn_output(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, float* o,
                 int64_t T, const int64_t* pos, float* out);
// attn_output in two parts, so output groups and rows can be split over ranks:
//   groups  o[T, heads of groups g0 .. g1 - 1, Dh] (inverse-roped in place) through their wo_a
//           blocks into z[T, (g1 - g0) * o_lora_rank];
//   rows    out[T, nd] = rows d0 .. d0 + nd - 1 of wo_b applied to z[T, G * o_lora_rank].
void attn_output_groups(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, float* o,
                        int64_t T, const int64_t* pos, int64_t g0, int64_t g1, float* z);
void attn_output_rows(const ModelConfig& cfg, const AttnWeights& w, const float* z, int64_t T,
                      int64_t d0, int64_t nd, float* out, int64_t ldo);

}  // namespace modelone
