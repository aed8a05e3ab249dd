// The engine: one sequence per dp group, run through the whole model on this rank's share of
// the world. It owns the loops: prefill (in steps of `prefill_chunk` tokens per rank, each
// step's positions split over the cp group, dist/cp_layout.h), decode, and greedy generation.
// Attention is context parallel over the cp group (dist/cp_attention.h); the MoE blocks run
// over the ep group (dist/moe_parallel.h). Ranks with no rows in a step (a short prompt, a dp
// group without a sequence) still step through every layer so the exchanges line up, and all
// dp groups agree on how many steps to run. W = 1 is the smallest world, not a separate path.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "comm/counters.h"
#include "dist/cp_attention.h"
#include "dist/cp_layout.h"
#include "dist/decode_split.h"
#include "dist/engram_store.h"
#include "dist/grid.h"
#include "dist/moe_parallel.h"
#include "model/config/config.h"
#include "model/blocks/mhc.h"
#include "model/cache/layer_cache.h"
#include "model/kernels/rope.h"
#include "model/io/model_weights.h"

namespace modelone {

// Under bf16 compute, which BF16 weights are repacked at load into the panel kernel's layout
// (model/blocks/weight_packing.h): all it can take, the routed experts only, or none.
enum class Repack : uint8_t { All, Experts, None };

struct EngineOptions {
  DType kv_dtype = DType::F32;
  Repack repack = Repack::All;
  MoeOptions moe;
  CpLayout cp_layout = CpLayout::Zigzag;
  int64_t prefill_chunk = 2048;  // prompt tokens per rank per prefill step
  bool capture_hidden = false;   // keep the residual after every layer (parity tests)
  EngramOptions engram;          // V4.1 Engram, when the config has Engram layers
};

// Wall seconds per part of the forward steps on this rank.
struct EngineTimers {
  double attention = 0, moe = 0, head = 0, engram = 0;  // engram: hashing, waits and the block
  template <class S, class F>
  static void fields(S& s, F&& f) {  // comm/rank_stats.h
    f("attention", s.attention), f("moe", s.moe), f("head", s.head), f("engram", s.engram);
  }
};

struct PrefillOptions {
  bool all_logits = false;  // every prompt position's logits, gathered at cp rank 0
  // With all_logits: called at cp rank 0 once per step with rows [n, vocab] of positions
  // pos0 .. pos0 + n - 1, in order; prefill() then keeps none of them (a long prompt's logits
  // never sit in memory at once).
  std::function<void(int64_t pos0, int64_t n, const float* rows)> on_logits;
  // Called on every rank after each step with the prompt tokens done so far (progress lines).
  std::function<void(int64_t done, int64_t total)> on_step;
};

// One sequence's state on this rank: its caches (this rank's shard), its tokens (and Engram's
// compressed ids), its newest logits and where the cp group stands in it. The engine runs one at a
// time; save_sequence / restore_sequence copy it (n samples of one prompt share its prefill).
struct SequenceState {
  std::vector<LayerCache> caches;
  std::vector<int32_t> tokens, chist;
  std::vector<float> last_logits;
  CpAttention::SeqPos cp;
};

// How generate picks a token and when a sequence ends besides eos and the length.
struct TokenPolicy {
  std::function<int32_t(const std::vector<float>& logits)> choose;
  std::function<bool(int32_t tok)> stop;
};

// One sequence's share of a batch step: its next tokens ids[n] (a prefill chunk, or the one token
// it decoded last).
struct BatchItem {
  SequenceState* seq = nullptr;
  const int32_t* ids = nullptr;
  int64_t n = 0;
};

class Engine {
 public:
  // placement: one per layer (ExpertPlacement::uniform for the default contiguous split).
  // engram: the sharded tables when the model has Engram layers and opt.engram.enabled.
  Engine(const ModelConfig& cfg, const RankGrid& grid, ModelWeights weights,
         std::vector<ExpertPlacement> placement, EngineOptions opt,
         std::unique_ptr<EngramStore> engram = nullptr);

  // Runs ids (this dp group's next prompt tokens, the same on every rank of the group; empty
  // when the group has none) as the next positions of the group's sequence. Collective over
  // the world. With all_logits and no on_logits, returns [ids.size(), vocab] at cp rank 0.
  std::vector<float> prefill(const std::vector<int32_t>& ids, const PrefillOptions& opt = {});
  // One new position for each dp group that passes a token (nullptr: none this step).
  // Collective over the world.
  void decode(const int32_t* token);
  // Greedy generation from the last logits: up to n tokens, stopping after the eos token
  // unless ignore_eos. Every dp group takes part; groups without a sequence idle along.
  // on_token(i) runs on every rank after token i is chosen (progress lines); on_new(tok) on the
  // ranks of a group that chose tok, as soon as it is chosen (streamed text).
  // policy.choose picks each token from the newest logits (default: the argmax, ties to the
  // lower id); policy.stop(tok), asked after each pick, ends the sequence there when true (stop
  // ids and strings). Both run on every rank of the group with the same logits, so they must
  // decide the same everywhere (model/sample/sampler.h draws by counter, not by state).
  std::vector<int32_t> generate(int64_t n, bool ignore_eos,
                                const std::function<void(int64_t i)>& on_token = {},
                                const std::function<void(int32_t tok)>& on_new = {},
                                const TokenPolicy& policy = {});
  // A batch of sequences (dist/engine_batch.cpp). With cp = 1 each rank serves its own
  // sequences (data-parallel attention); under cp > 1 the ranks of a cp group pass the same
  // items in the same order and each sequence is split over the group as alone, one after
  // another in each layer's attention. The MoE exchanges carry all of the step's tokens.
  // step_batch runs every item's tokens as the next positions of its sequence, all rows through
  // each layer together (the dense weights read once for the batch), and leaves each item's
  // sequence holding its newest position's logits (on every rank of its group). Collective over
  // the world: every rank calls it once per step, with or without items. The engine's own
  // sequence is untouched.
  SequenceState new_sequence() const;
  void step_batch(const std::vector<BatchItem>& items);

  // Fills the caches as if n synthetic tokens had been prefilled (benchmarks of long contexts
  // without a long prefill): entries and window rows are deterministic random rows of
  // (seed, layer, position), placed as a one-step prefill in the configured layout would.
  void synthetic_context(int64_t n, uint64_t seed);
  void reset();  // forget the sequence
  // A copy of the sequence's state, and back. Every rank of the world must do the same (each
  // copies its own shard); no message moves.
  SequenceState save_sequence() const;
  void restore_sequence(const SequenceState& s);
  // Room in this rank's compressed stores for a sequence of n tokens (its share of them under
  // cp, with some slack), so that no decode step pays for moving a store that outgrew its room.
  void reserve(int64_t n);

  // The logits of the newest position, on every rank of the cp group (empty before any).
  const std::vector<float>& last_logits() const { return last_logits_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }  // the sequence so far
  int64_t position() const { return int64_t(tokens_.size()); }

  // With capture_hidden: [0] the embedding streams [T, hc, D], [l + 1] the streams after layer
  // l, and last the final normed hidden state [T, D], of this rank's rows of the last step.
  const std::vector<std::vector<float>>& hidden() const { return hidden_; }
  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const RankGrid& grid() const { return grid_; }
  DType kv_dtype() const { return opt_.kv_dtype; }
  MoeParallel& moe() { return moe_; }
  CpAttention& attention() { return cp_; }
  comm::Counters& counters() { return counters_; }
  EngramStore* engram() { return engram_.get(); }
  const std::vector<LayerCache>& caches() const { return caches_; }
  const EngineTimers& timers() const { return timers_; }
  size_t cache_bytes() const;

 private:
  void step(const StepLayout& L, bool all_logits, std::vector<float>* rows);
  void append_tokens(const int32_t* ids, int64_t n);
  // This rank's rows of every Engram table for the step (requested now when prefetching).
  void engram_begin(const StepLayout& L);
  // Rows [pos, pos + n) of a sequence whose compressed ids are chist.
  struct EngramSegment {
    const int32_t* chist;
    int64_t pos, n;
  };
  void engram_begin(const std::vector<EngramSegment>& segs);
  // step_batch's parts (dist/engine_batch.cpp): the items' rows on this rank, their layouts
  // (cp > 1) and Engram segments; the attention of one layer; the LM head.
  struct BatchStep {
    std::vector<CpAttention::BatchSeq> seqs;  // per item: its caches and its rows here
    std::vector<StepLayout> layouts;
    std::vector<CpAttention::SeqPos> at;
    std::vector<EngramSegment> engram;
  };
  void batch_rows(const BatchItem& it, BatchStep* b);
  void batch_attention(int64_t l, const Rope& rope, float* h, float* out);
  void batch_head(const std::vector<BatchItem>& items, const BatchStep& b, const float* x);
  // The residual streams x_[T, hc, D] of the step's tokens ids_ (and V4.1's first pre-mix).
  float* embed_rows(int64_t T);
  // The final hyper head (V4) or collapse (V4.1) and norm of rows t0 .. t0 + n - 1: y[n, D].
  void final_rows(const float* x, int64_t t0, int64_t n, float* y);
  void engram_apply(int64_t k, int64_t T, float* x);
  void layer_forward(int64_t l, const int32_t* tokens, int64_t T, bool attend, float* x);
  // The streams x[T, hc, D] collapsed into h[T, D] at an mHC site, with its post and comb.
  void collapse_site(const HcSite& site, const float* x, int64_t T, float* h, float* post,
                     float* comb);
  void head(const StepLayout& L, const float* x, int64_t T, bool all_logits,
            std::vector<float>* rows);

  const ModelConfig& cfg_;
  const RankGrid& grid_;
  ModelWeights w_;
  EngineOptions opt_;
  Rope rope_main_, rope_compress_;
  comm::Counters counters_;
  MoeParallel moe_;
  CpAttention cp_;
  std::vector<LayerCache> caches_;
  std::vector<int32_t> tokens_;
  std::unique_ptr<EngramStore> engram_;
  std::vector<int32_t> chist_;                          // compressed ids of tokens_ (Engram)
  std::vector<std::vector<int64_t>> eng_rows_;          // per table: this step's rows [T, C]
  std::vector<float> eng_e_, eng_kv_, eng_part_;
  int decode_tail_ = -1;  // in a decode step, the cp rank with the new token
  DecodeSplit split_;  // decode's dense products split over the cp group
  const std::vector<CpAttention::BatchSeq>* batch_ = nullptr;  // set during step_batch
  std::vector<float> last_logits_;
  PrefillOptions prefill_opt_;
  EngineTimers timers_;
  // Per-layer scratch, reused across layers and steps: h / out [T, D], post [T, hc], comb [T, hc, hc].
  std::vector<float> x_, y_, h_, out_, post_, comb_, logits_;  // x_ [T, hc, D] streams
  std::vector<float> gathered_;  // step_batch under cp > 1: the group's logits
  std::vector<float> pre_, pre_next_;  // V4.1: the pre-mix [T, hc] the next site collapses with
  std::vector<int32_t> ids_;                                   // this rank's rows' tokens
  // MODELONE_INJECT_FAULT=RANK:LAYER makes that world rank fail in that layer (tests of the
  // error path: one rank failing mid-run must stop every rank); RANK:LAYER:stray makes it wait
  // there in a barrier the others never join (the watchdog's case).
  int fault_rank_ = -1;
  int64_t fault_layer_ = -1;
  bool fault_stray_ = false;
  std::vector<std::vector<float>> hidden_;
};

}  // namespace modelone
