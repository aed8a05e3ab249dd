// Engine::step_batch: several sequences in one forward step. Rows are this rank's rows of the
// items' tokens in item order, so every row-wise part of a layer (the mHC sites, the norms, the
// attention projections, the MoE with its one exchange per layer) runs over all of them at once.
#include <cstring>

#include "dist/engine.h"
#include "model/base/check.h"
#include "model/blocks/engram.h"
#include "model/kernels/linear.h"

namespace modelone {

SequenceState Engine::new_sequence() const {
  SequenceState s;
  s.caches = make_layer_caches(cfg_, opt_.kv_dtype);
  s.cp.cache_end.assign(size_t(grid_.cp_comm.size()), 0);
  return s;
}

void Engine::batch_rows(const BatchItem& it, BatchStep* b) {
  const int64_t V = cfg_.vocab_size;
  MO_CHECK(it.seq && it.n > 0, "a batch item needs a sequence and tokens");
  SequenceState& q = *it.seq;
  for (int64_t i = 0; i < it.n; ++i)
    MO_REQUIRE(it.ids[i] >= 0 && it.ids[i] < V, "token id ", it.ids[i], " at position ",
               int64_t(q.tokens.size()) + i, " is outside the vocabulary [0, ", V, ")");
  const int64_t p0 = int64_t(q.tokens.size());
  q.tokens.insert(q.tokens.end(), it.ids, it.ids + it.n);
  if (engram_)
    for (int64_t i = 0; i < it.n; ++i) q.chist.push_back(engram_->compress(it.ids[i]));
  const int P = grid_.cp_comm.size(), me = grid_.cp_comm.rank();
  // This rank's rows of the item: under cp > 1 its positions in the item's own layout (a decode
  // token on the sequence's tail, a prompt chunk split as alone), in the layout's order.
  b->layouts.push_back(it.n == 1 && p0 > 0 ? decode_layout(p0, P, q.cp.tail)
                                           : prefill_layout(p0, it.n, P, opt_.cp_layout));
  const StepLayout& L = b->layouts.back();
  const int64_t row = int64_t(ids_.size());
  for (const Segment& s : L.segs[size_t(me)]) {
    ids_.insert(ids_.end(), q.tokens.begin() + s.pos, q.tokens.begin() + s.pos + s.n);
    b->engram.push_back({q.chist.data(), s.pos, s.n});
  }
  // seg: at cp = 1 the item's one segment; under cp > 1 only its rows here (row, n) are read.
  b->seqs.push_back({&q.caches, Segment{p0, int64_t(ids_.size()) - row, row}});
  b->at.push_back(q.cp);
}

void Engine::step_batch(const std::vector<BatchItem>& items) {
  const int P = grid_.cp_comm.size();
  BatchStep b;
  ids_.clear();
  for (const BatchItem& it : items) batch_rows(it, &b);
  const int64_t T = int64_t(ids_.size());
  float* x = embed_rows(T);
  decode_tail_ = -1;  // no decode split of the engine's dense parts: rows of many sequences
  engram_begin(b.engram);
  if (P > 1) cp_.begin_batch(b.layouts, b.at);
  batch_ = &b.seqs;
  try {
    for (int64_t l = 0; l < cfg_.num_layers; ++l) layer_forward(l, ids_.data(), T, true, x);
  } catch (...) {
    batch_ = nullptr;
    throw;
  }
  batch_ = nullptr;
  if (P > 1) {
    const std::vector<CpAttention::SeqPos> at = cp_.end_batch();
    for (size_t i = 0; i < items.size(); ++i) items[i].seq->cp = at[i];
  }
  batch_head(items, b, x);
}

void Engine::batch_attention(int64_t l, const Rope& rope, float* h, float* out) {
  const AttnWeights& w = w_.layers[size_t(l)].attn;
  if (grid_.cp_comm.size() == 1) return cp_.forward_batch(l, w, rope, h, *batch_, out);
  const int64_t D = cfg_.hidden_size, src = cfg_.v41() ? cfg_.shared.kv_of[size_t(l)] : -1;
  for (size_t i = 0; i < batch_->size(); ++i) {
    std::vector<LayerCache>& c = *(*batch_)[i].caches;
    const int64_t r = (*batch_)[i].seg.row;
    cp_.forward_item(i, l, w, rope, h + r * D, c[size_t(l)], out + r * D,
                     src >= 0 ? &c[size_t(src)] : nullptr);
  }
}

// Each item's newest row through the final head and the LM head, every row a rank holds in one
// product; under cp > 1 the newest row is on the item's tail and the logits are all-gathered, so
// every rank of the group holds each item's (each samples the same token).
void Engine::batch_head(const std::vector<BatchItem>& items, const BatchStep& b, const float* x) {
  const double t0 = comm::now();
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size, B = int64_t(items.size());
  const comm::Comm& cp = grid_.cp_comm;
  const int P = cp.size(), me = cp.rank();
  auto tail = [&](size_t i) { return P == 1 ? 0 : b.layouts[i].tail(); };
  // Scratch kept across steps: [B, V] is 16.5 MB at batch 32 of V4's vocabulary, and freeing it
  // each step cost an munmap and the page faults of the next.
  y_.resize(size_t(B * D));
  int64_t k = 0;
  for (size_t i = 0; i < size_t(B); ++i)
    if (tail(i) == me) {
      const Segment& s = b.seqs[i].seg;
      final_rows(x, s.row + s.n - 1, 1, y_.data() + k++ * D);
    }
  logits_.resize(size_t(B * V));
  if (k > 0) linear(y_.data(), k, D, w_.head, 0, V, logits_.data(), V);
  const float* all = logits_.data();
  if (P > 1) {
    cp.allgatherv(logits_.data(), k * V, &gathered_);
    all = gathered_.data();
  }
  // Rank r's rows are its items in item order, after every lower rank's.
  std::vector<int64_t> at(size_t(P) + 1, 0);
  for (size_t i = 0; i < size_t(B); ++i) ++at[size_t(tail(i)) + 1];
  for (int r = 0; r < P; ++r) at[size_t(r) + 1] += at[size_t(r)];
  for (size_t i = 0; i < size_t(B); ++i) {
    const float* row = all + at[size_t(tail(i))]++ * V;
    items[i].seq->last_logits.assign(row, row + V);
  }
  timers_.head += comm::now() - t0;
}

}  // namespace modelone
