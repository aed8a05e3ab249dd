#include "dist/batch_scheduler.h"

#include <algorithm>
#include <cmath>

#include "comm/clock.h"
#include "model/base/check.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

// A named namespace, not an anonymous one: BatchScheduler::Active (declared in the header) holds
// these, and a class with external linkage may not hold a type local to one file.
namespace batch_detail {
struct Sample {
  SequenceState state;
  std::vector<int32_t> out;
  int32_t next = -1;  // the token chosen last, the sample's input in the next step
  bool done = false;
};
}  // namespace batch_detail
using batch_detail::Sample;

struct BatchScheduler::Active {
  ScheduledRequest req;
  int64_t fed = 0, bytes = 0;
  std::vector<Sample> samples;  // [0] holds the prompt's state until it is done
  double arrived = 0, admitted = 0, prompt_done = 0;
  bool started = false;  // the prompt is done and the samples exist
  bool decoding() const { return fed == int64_t(req.prompt.size()); }
};

BatchScheduler::BatchScheduler(Engine& engine, SchedulerOptions opt) : engine_(engine), opt_(opt) {
  MO_REQUIRE(opt_.max_seqs >= 1, "the batch's sequence limit must be at least 1, got ", opt_.max_seqs);
  MO_REQUIRE(opt_.step_tokens >= 1, "the tokens per step must be at least 1, got ", opt_.step_tokens);
  MO_REQUIRE(opt_.cache_budget > 0, "the cache budget must be positive");
}

BatchScheduler::~BatchScheduler() = default;

int64_t BatchScheduler::bytes_needed(int64_t prompt, int64_t max_tokens, int64_t n) const {
  const ModelConfig& cfg = engine_.config();
  // Under cp > 1 each rank of the group holds its share of every sequence.
  return n * sequence_bytes(cfg, engine_.kv_dtype(), prompt + max_tokens,
                            engine_.grid().cp_comm.size());
}

void BatchScheduler::add(ScheduledRequest r) {
  const int64_t n = int64_t(r.samples.size());
  MO_REQUIRE(n >= 1, "a request needs at least one sample");
  MO_REQUIRE(!r.prompt.empty(), "a request needs a prompt of at least one token");
  MO_REQUIRE(n <= opt_.max_seqs, n, " samples are more than the ", opt_.max_seqs,
             " sequences a rank runs at once");
  const int64_t need = bytes_needed(int64_t(r.prompt.size()), r.max_tokens, n);
  MO_REQUIRE(need <= opt_.cache_budget, "its caches need ", double(need) / (1 << 20),
             " MiB, more than the cache budget of ", double(opt_.cache_budget) / (1 << 20), " MiB");
  waiting_.push_back({std::move(r), comm::now(), need});
}

void BatchScheduler::admit() {
  while (!waiting_.empty()) {
    Waiting& wr = waiting_.front();
    ScheduledRequest& r = wr.req;
    const int64_t n = int64_t(r.samples.size()), need = wr.need;
    // In arrival order: a request that does not fit yet waits, and so do the ones behind it.
    if (reserved_ + need > opt_.cache_budget || running_samples_ + n > opt_.max_seqs) return;
    auto a = std::make_unique<Active>();
    a->bytes = need;
    a->arrived = wr.arrived;
    a->admitted = comm::now();
    a->samples.resize(1);
    a->samples[0].state = engine_.new_sequence();
    reserve_sequence(a->samples[0].state.caches, engine_.config(), int64_t(r.prompt.size()) + r.max_tokens,
                     engine_.grid().cp_comm.size());
    a->req = std::move(r);
    waiting_.pop_front();
    reserved_ += need;
    running_samples_ += n;
    active_.push_back(std::move(a));
  }
}

void BatchScheduler::pick(const std::vector<std::pair<Active*, size_t>>& picks) {
  // The choices are independent (the sampler keys each draw by sequence and position), so they
  // run over the threads: at batch 32 a top-p draw over V-Flash's vocabulary each (2-18 ms) would
  // otherwise rival the step; a small vocabulary's choices are too short to split. The first
  // error is raised after the loop (none may leave it).
  std::vector<int32_t> toks(picks.size());
  std::string error;
  const int64_t n = int64_t(picks.size());
  parallel_dynamic(n, threads_for(n * engine_.config().vocab_size * 4), [&](int64_t kk) {
    const size_t k = size_t(kk);
    Active& a = *picks[k].first;
    const size_t i = picks[k].second;
    const SequenceState& st = a.samples[i].state;
    try {
      MO_REQUIRE(std::all_of(st.last_logits.begin(), st.last_logits.end(), [](float v) { return std::isfinite(v); }),
                 "the logits at position ", st.tokens.size() - 1, " are not finite (NaN or infinity): the "
                 "checkpoint's weights or the config's values give no usable numbers");
      toks[k] = a.req.samples[i]->choose(st.last_logits, st.tokens);
    } catch (const std::exception& e) {
#pragma omp critical
      if (error.empty()) error = e.what();
    }
  });
  MO_REQUIRE(error.empty(), error);
  for (size_t k = 0; k < picks.size(); ++k) {
    Active& a = *picks[k].first;
    Sample& s = a.samples[picks[k].second];
    const int32_t tok = toks[k];
    s.out.push_back(tok);
    // The driver sees every token (its text), then eos and the length end the sample too.
    const bool stopped = a.req.samples[picks[k].second]->stop(tok);
    s.done = stopped || (!a.req.ignore_eos && tok == engine_.config().eos_token_id) ||
             int64_t(s.out.size()) == a.req.max_tokens;
    s.next = tok;
  }
}

std::vector<FinishedRequest> BatchScheduler::step() {
  admit();
  // Decode tokens first (one per running sample), then prompt chunks in arrival order.
  std::vector<BatchItem> items;
  std::vector<std::pair<Active*, int64_t>> stepped;  // (request, sample or -1: a prompt chunk)
  for (auto& a : active_) {
    if (!a->decoding()) continue;
    for (size_t i = 0; i < a->samples.size(); ++i)
      if (!a->samples[i].done) {
        items.push_back({&a->samples[i].state, &a->samples[i].next, 1});
        stepped.push_back({a.get(), int64_t(i)});
      }
  }
  int64_t budget = opt_.step_tokens - int64_t(items.size());
  for (auto& a : active_) {
    if (a->decoding() || budget <= 0) continue;
    const int64_t n = std::min(budget, int64_t(a->req.prompt.size()) - a->fed);
    items.push_back({&a->samples[0].state, a->req.prompt.data() + a->fed, n});
    stepped.push_back({a.get(), -1});
    a->fed += n;
    budget -= n;
  }
  engine_.step_batch(items);
  ++steps_;
  comm::agree(engine_.grid().world, [&] {
    std::vector<std::pair<Active*, size_t>> picks;  // the samples with new logits
    for (auto& [a, i] : stepped) {
      if (i >= 0) {
        picks.push_back({a, size_t(i)});
        continue;
      }
      if (!a->decoding()) continue;  // mid-prompt
      // The prompt is done: every sample starts from its state and its logits.
      a->prompt_done = comm::now();
      a->started = true;
      a->samples.resize(a->req.samples.size(), Sample{a->samples[0].state, {}, -1, false});
      for (size_t k = 1; k < a->samples.size(); ++k)  // a copy's stores hold no spare room
        reserve_sequence(a->samples[k].state.caches, engine_.config(),
                         int64_t(a->req.prompt.size()) + a->req.max_tokens,
                         engine_.grid().cp_comm.size());
      for (size_t k = 0; k < a->samples.size(); ++k)
        if (a->req.max_tokens > 0) picks.push_back({a, k});
        else a->samples[k].done = true;
    }
    pick(picks);
  });
  std::vector<FinishedRequest> done;
  for (auto it = active_.begin(); it != active_.end();) {
    Active& a = **it;
    const bool over = a.started &&
                      std::all_of(a.samples.begin(), a.samples.end(), [](const Sample& s) { return s.done; });
    if (!over) {
      ++it;
      continue;
    }
    FinishedRequest f;
    f.key = a.req.key;
    f.samples = std::move(a.req.samples);
    for (Sample& s : a.samples) f.tokens.push_back(std::move(s.out));
    const double now = comm::now();
    f.queue_s = a.admitted - a.arrived;
    f.prefill_s = a.prompt_done - a.admitted;
    f.decode_s = now - a.prompt_done;
    reserved_ -= a.bytes;
    running_samples_ -= int64_t(f.samples.size());
    done.push_back(std::move(f));
    it = active_.erase(it);
  }
  return done;
}

bool BatchScheduler::cancel(int64_t key) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if (it->req.key == key) {
      waiting_.erase(it);
      return true;
    }
  for (auto it = active_.begin(); it != active_.end(); ++it)
    if ((*it)->req.key == key) {  // its caches go with it
      reserved_ -= (*it)->bytes;
      running_samples_ -= int64_t((*it)->req.samples.size());
      active_.erase(it);
      return true;
    }
  return false;
}

bool BatchScheduler::busy_anywhere() const {
  const int64_t mine = waiting_.empty() && active_.empty() ? 0 : 1;
  return engine_.grid().world.allreduce(mine, comm::Op::Max) > 0;
}

}  // namespace modelone
