// Engine::step_batch: several sequences of this rank in one forward step (cp = 1). Rows are the
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
  return s;
}

void Engine::step_batch(const std::vector<BatchItem>& items) {
  MO_REQUIRE(grid_.cp_comm.size() == 1, "a batch of sequences runs with --cp 1 (each rank serving "
             "its own sequences); this grid has cp = ", grid_.cp_comm.size());
  const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size;
  std::vector<CpAttention::BatchSeq> seqs;
  std::vector<EngramSegment> eng;
  ids_.clear();
  for (const BatchItem& it : items) {
    MO_CHECK(it.seq && it.n > 0, "a batch item needs a sequence and tokens");
    SequenceState& q = *it.seq;
    for (int64_t i = 0; i < it.n; ++i)
      MO_REQUIRE(it.ids[i] >= 0 && it.ids[i] < V, "token id ", it.ids[i], " at position ",
                 int64_t(q.tokens.size()) + i, " is outside the vocabulary [0, ", V, ")");
    const Segment seg{int64_t(q.tokens.size()), it.n, int64_t(ids_.size())};
    q.tokens.insert(q.tokens.end(), it.ids, it.ids + it.n);
    if (engram_)
      for (int64_t i = 0; i < it.n; ++i) q.chist.push_back(engram_->compress(it.ids[i]));
    ids_.insert(ids_.end(), it.ids, it.ids + it.n);
    seqs.push_back({&q.caches, seg});
    eng.push_back({q.chist.data(), seg.pos, seg.n});
  }
  const int64_t T = int64_t(ids_.size());
  float* x = embed_rows(T);
  decode_tail_ = -1;  // no decode split: the group is this rank
  engram_begin(eng);
  batch_ = &seqs;
  try {
    for (int64_t l = 0; l < cfg_.num_layers; ++l) layer_forward(l, ids_.data(), T, true, x);
  } catch (...) {
    batch_ = nullptr;
    throw;
  }
  batch_ = nullptr;
  // Each item's newest row through the final head and the LM head, all items in one product.
  const double t0 = comm::now();
  const int64_t B = int64_t(items.size());
  // Scratch kept across steps: [B, V] is 16.5 MB at batch 32 of V4's vocabulary, and freeing it
  // each step cost an munmap and the page faults of the next.
  y_.resize(size_t(B * D));
  logits_.resize(size_t(B * V));
  for (int64_t i = 0; i < B; ++i) {
    const Segment& s = seqs[size_t(i)].seg;
    final_rows(x, s.row + s.n - 1, 1, y_.data() + i * D);
  }
  if (B > 0) linear(y_.data(), B, D, w_.head, 0, V, logits_.data(), V);
  for (int64_t i = 0; i < B; ++i)
    items[size_t(i)].seq->last_logits.assign(logits_.begin() + i * V, logits_.begin() + (i + 1) * V);
  timers_.head += comm::now() - t0;
}

}  // namespace modelone
