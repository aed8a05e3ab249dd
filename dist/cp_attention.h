// Context-parallel attention: the ranks of a cp group share one sequence. W = 1 (cp = 1) is the
// smallest group of the same code, not a second path.
//
// Prefill step (each rank holds some segments of the step's positions, dist/cp_layout.h):
//   project keys -> halo transfers posted (dist/cp_halo.h) -> project queries -> halo waited ->
//   each segment runs through the cache (window keys, compressors: a rank keeps the entries of
//   the windows that close in its segments) -> every rank's entries and indexer keys all-gathered
//   into one table in global window order -> indexer top-k per query -> attend -> sink -> output.
// Decode step (one new position, on the tail rank, which keeps the raw window):
//   the tail projects and advances its window and compressors; a window that closes makes an
//   entry placed on cp rank (index mod cp), so no rank fills first -> the query (and the new
//   entry) is broadcast -> each rank scores its own indexer keys -> the ranks' candidates are
//   all-gathered and merged into the global top-k -> each rank attends over the chosen entries
//   it holds (HCA: all it holds; the tail adds the window) -> partials all-gathered, merged with
//   the sink counted once. The large projections are split over the group as well (q heads,
//   output groups and rows, by output group: dist/cp_decode.cpp), the output rows meet at the
//   tail.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/comm.h"
#include "comm/counters.h"
#include "dist/cp_halo.h"
#include "dist/cp_layout.h"
#include "model/blocks/attention.h"
#include "model/blocks/indexer_v41.h"
#include "model/config/config.h"
#include "model/cache/layer_cache.h"

namespace modelone {

// Seconds per part of the attention on this rank (wall, except compute_cpu).
struct CpTimers {
  double project = 0, indexer = 0, topk = 0, attend = 0, merge = 0, output = 0;
  double compute_cpu = 0;  // CPU seconds of the compute sections (no waits)
  template <class S, class F>
  static void fields(S& s, F&& f) {  // comm/rank_stats.h
    f("project", s.project), f("indexer", s.indexer), f("topk", s.topk), f("attend", s.attend);
    f("merge", s.merge), f("output", s.output), f("compute_cpu", s.compute_cpu);
  }
  CpTimers& operator+=(const CpTimers& o) { return comm::fields_add(*this, o), *this; }
  CpTimers operator-(const CpTimers& o) const { return comm::fields_minus(*this, o); }
};

struct DecodeStep;  // dist/cp_decode.cpp

class CpAttention {
 public:
  CpAttention(const ModelConfig& cfg, const comm::Comm& cp, DType kv_dtype,
              comm::Counters* counters);

  // Every rank of the cp group calls begin_step, forward for each layer, then end_step.
  void begin_step(const StepLayout& L);
  // h[T, D]: the normed inputs of this rank's rows of the step; out[T, D]. kv_src: V4.1's Shared
  // layers, the cache of the layer's kv source (the layer's own when it is one).
  void forward(int64_t layer, const AttnWeights& w, const Rope& rope, const float* h,
               LayerCache& cache, float* out, LayerCache* kv_src = nullptr);
  void end_step();
  // A batch of sequences at cp = 1 (dist/batch_attention.cpp): each has one segment of the step,
  // rows [seg.row, seg.row + seg.n) of h[T, D] and out[T, D], and its own caches (one per
  // layer). The projections and the output run over every row at once, so each weight is read
  // once per step whatever the batch; each sequence advances and attends over its own caches.
  // Needs no begin_step / end_step (no cp state: the group is this rank).
  struct BatchSeq {
    std::vector<LayerCache>* caches = nullptr;
    Segment seg;
  };
  void forward_batch(int64_t layer, const AttnWeights& w, const Rope& rope, const float* h,
                     const std::vector<BatchSeq>& seqs, float* out);
  void reset();
  // Records L as run without computing it (caches filled by other means, e.g. synthetic).
  void assume_step(const StepLayout& L) {
    s_.L = L;
    end_step();
  }

  // Where the group stands in its sequence (part of a sequence's saved state).
  struct SeqPos {
    std::vector<int64_t> cache_end;
    int tail = 0;
    int64_t pos = 0;
  };
  SeqPos seq_pos() const { return {s_.cache_end, s_.tail, s_.pos}; }
  void set_seq_pos(const SeqPos& p) {
    s_.cache_end = p.cache_end;
    s_.tail = p.tail;
    s_.pos = p.pos;
  }
  // A batch of sequences under cp > 1 (dist/batch_attention.cpp): each is split over the group
  // as it would be alone (its own layout L[i], halo and V4.1 hand-over), the sequences one after
  // another in each layer, so every rank of the group passes the same items in the same order.
  // at[i]: where the group stands in sequence i. h and out of forward_item are the item's rows.
  // The engine's own sequence (begin_step .. end_step) is untouched.
  void begin_batch(const std::vector<StepLayout>& L, const std::vector<SeqPos>& at);
  void forward_item(size_t i, int64_t layer, const AttnWeights& w, const Rope& rope,
                    const float* h, LayerCache& cache, float* out, LayerCache* kv_src = nullptr);
  std::vector<SeqPos> end_batch();  // where the group stands in each sequence after the step
  int tail() const { return s_.tail; }          // cp rank standing at the newest position
  int64_t position() const { return s_.pos; }   // positions processed
  // Time spent so far, in the layers of one kind or in all.
  const CpTimers& timers(AttnKind k) const { return timers_[size_t(k)]; }
  CpTimers timers() const;

 private:
  void prefill(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
               LayerCache& cache, LayerCache* kv_src, float* out);
  void decode(int64_t l, const AttnWeights& w, const Rope& rope, const float* h,
              LayerCache& cache, LayerCache* kv_src, float* out);
  // V4.1 prefill: the entry table of the layer's kv source (made when the source runs, read by
  // the layers after it) and, at an index source, the picks of every query (kept for the layers
  // after it).
  EntryTable shared_prefill(int64_t l, const LayerCache& src, const std::vector<int64_t>& pos);
  // V4.1 decode: the global top-k of the query at pos (computed at an index source, kept for
  // the layers after it), from the ranks' candidates.
  const std::vector<int32_t>& shared_decode_topk(int64_t l, int64_t pos, const float* iq,
                                                 const LayerCache& src);
  // The global top-k from this rank's candidates (padded to index_topk) and every other rank's.
  int64_t merge_ranks_topk(std::vector<Candidate>& mine, int32_t* top, CpTimers& timers);
  // The keys of every window so far in global order: the local store when it holds all of
  // them (cp = 1), else every rank's stores all-gathered.
  EntryTable table(const EntryStore& local, std::vector<float>& dense, const char* op);
  // Partial attention of the one decode query q[H, Dh] over window rows kw[nw] and compressed
  // rows kc[nc], into part_.
  void decode_partial(const float* q, const float* kw, int64_t nw, const float* kc, int64_t nc);
  // decode's phases, in order (dist/cp_decode.cpp; DecodeStep holds the step's facts).
  void decode_tail(const DecodeStep& s, const AttnWeights& w, const Rope& rope, const float* h,
                   LayerCache& cache, const float** kw, int64_t* nw);
  void decode_share_query(const DecodeStep& s, LayerCache& cache);
  void decode_query_heads(const DecodeStep& s, const AttnWeights& w, const Rope& rope);
  const float* decode_compressed_keys(const DecodeStep& s, LayerCache& cache, LayerCache* kv_src,
                                      int64_t* nc);
  void decode_merge_partials(const DecodeStep& s, const float* sink);
  void decode_output(const DecodeStep& s, const AttnWeights& w, const Rope& rope, float* out);

  const ModelConfig& cfg_;
  const comm::Comm& cp_;
  DType kv_dtype_;
  comm::Counters* counters_;
  // One sequence's step state: its layout and halo in this step, where the group stands in it,
  // and V4.1's hand-over from source layers to the layers after them within the step. The
  // engine's own sequence lives in s_; a batch under cp > 1 keeps one per item and swaps each
  // in for its forward (vector swaps: no copies).
  struct SeqStep {
    StepLayout L;
    CpHalo halo;
    std::vector<int64_t> cache_end;  // [cp rank] the position its cache state stands at
    int tail = 0;
    int64_t pos = 0;
    std::vector<int32_t> picks, n_picks;   // the step's picks (V4.1: the index source's, kept)
    EntryTable shared_ent, shared_keys;    // prefill: the latest kv source's tables
    std::vector<float> shared_ent_dense, shared_key_dense;
    BlockPicks blocks;                     // prefill: the candidate source's blocks per query
    std::vector<int32_t> shared_top;       // decode: the latest index source's picks
    std::vector<int32_t> cand_blocks;      // decode: the candidate source's blocks
  };
  SeqStep s_;
  std::vector<SeqStep> items_;  // begin_batch .. end_batch
  struct SwapIn;                 // dist/batch_attention.cpp
  CpTimers timers_[kAttnKinds];  // by AttnKind
  // Scratch kept across layers and steps (no page faults per layer).
  AttnProj p_;
  std::vector<SegmentWindow> wins_;
  AttnPartials part_;
  std::vector<float> ent_dense_, key_dense_, gathered_, msg_, parts_buf_, o_, q_, qs_, z_, zs_;
  std::vector<Candidate> cands_;
  std::vector<AttnPartials> rank_parts_;
  std::vector<uint8_t> raw_buf_;
  std::vector<int32_t> idx_buf_;
  EntryStore new_ent_, new_key_;
  // forward_batch: per sequence of the step, its tables' fp32 rows (entries, keys) and its
  // candidate blocks (kept from the candidate source to the layers after it).
  std::vector<std::vector<float>> batch_dense_;
  std::vector<BlockPicks> batch_blocks_;
  // A decode step's: each sequence's bf16 index keys, and the picks renumbered into the entries
  // its queries picked (picked_entries), [T, index_topk].
  std::vector<std::vector<uint16_t>> batch_keys_bf16_;
  std::vector<int32_t> batch_picks_;
  EntryTable picked_entries(const EntryStore& store, const Segment& s, std::vector<float>& dense);
};

}  // namespace modelone
