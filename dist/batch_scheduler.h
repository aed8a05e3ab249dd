// Continuous batching over Engine::step_batch, as vLLM's chunked-prefill scheduler does it. With
// cp = 1 each rank serves its own requests; under cp > 1 every rank of a cp group queues the same
// requests and makes the same decisions (nothing here reads a clock to decide), each sequence
// split over the group. Every step carries each running sample's next token
// first, then prompt chunks of the requests still in prefill, in arrival order, up to a token
// budget per step; samples leave as they end and waiting requests join between steps.
//
// The cache pool: a request is admitted, in arrival order, only while its worst case fits the
// byte budget (every sample to prompt + max_tokens positions, model/cache/layer_cache.h
// sequence_bytes) and the running count allows; its stores are reserved to that size then, so the
// pool never overcommits and a running sequence never waits for room. Caches are not paged:
// V4's stores are compressed (1/4 and 1/128 of the positions, plus a 127-row window per layer),
// so a sequence's worst case is small and known at admission; a paged pool would add an
// indirection to every attend for memory the compression already saves.
//
// n samples of one prompt share its prefill: when the prompt is done its state is copied to the
// other samples, which then decode on their own.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "dist/engine.h"
#include "dist/sample_driver.h"

namespace modelone {

struct SchedulerOptions {
  int64_t max_seqs = 64;      // samples decoding at once on this rank
  int64_t step_tokens = 512;  // tokens per step: decode tokens first, prompt chunks in the rest
  int64_t cache_budget = 0;   // bytes of caches this rank may hold
};

struct ScheduledRequest {
  int64_t key = 0;  // the caller's name for it, returned when it finishes
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::unique_ptr<SampleDriver>> samples;  // n >= 1
};

struct FinishedRequest {
  int64_t key = 0;
  std::vector<std::unique_ptr<SampleDriver>> samples;
  std::vector<std::vector<int32_t>> tokens;  // per sample, its output
  double queue_s = 0, prefill_s = 0, decode_s = 0;  // waiting, prompt, output
};

class BatchScheduler {
 public:
  BatchScheduler(Engine& engine, SchedulerOptions opt);
  ~BatchScheduler();
  // The pool bytes a request reserves: every sample to prompt + max_tokens positions.
  int64_t bytes_needed(int64_t prompt, int64_t max_tokens, int64_t n) const;
  // Queues r on this rank. Throws Error when it could never be admitted (its caches above the
  // budget, more samples than max_seqs).
  void add(ScheduledRequest r);
  // One step: admits what fits, runs one engine step with this rank's items, picks each stepped
  // sample's next token. Returns this rank's requests that finished in it. Collective over the
  // world; a failure on one rank (non-finite logits) ends every rank with its message.
  std::vector<FinishedRequest> step();
  // Drops request `key` (queued or running) and frees its caches; false when this rank does not
  // hold it. Between steps, on every rank of the group that runs it.
  bool cancel(int64_t key);
  // Whether any rank still has requests queued or running (collective over the world).
  bool busy_anywhere() const;
  int64_t waiting() const { return int64_t(waiting_.size()); }
  int64_t running() const { return int64_t(active_.size()); }
  int64_t reserved_bytes() const { return reserved_; }
  int64_t steps() const { return steps_; }

 private:
  struct Active;
  struct Waiting {  // a queued request, when it came and the pool bytes it will reserve
    ScheduledRequest req;
    double arrived;
    int64_t need;
  };
  void admit();
  // Each (request, sample)'s next token from its newest logits, and whether it ended there.
  void pick(const std::vector<std::pair<Active*, size_t>>& picks);

  Engine& engine_;
  SchedulerOptions opt_;
  std::deque<Waiting> waiting_;
  std::vector<std::unique_ptr<Active>> active_;
  int64_t reserved_ = 0, running_samples_ = 0, steps_ = 0;
};

}  // namespace modelone
