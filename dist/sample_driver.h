// How one sample of a request picks its tokens and when it ends, as the batch scheduler
// (dist/batch_scheduler.h) and Engine::generate's caller both ask it: the CLI's SequenceGen
// (dist/cli/generation.h) implements it with the sampler, stop ids and stop strings.
#pragma once
#include <cstdint>
#include <vector>

namespace modelone {

class SampleDriver {
 public:
  virtual ~SampleDriver() = default;
  // The next token from the sample's newest logits; tokens: its sequence so far (prompt and
  // output), so position = tokens.size().
  virtual int32_t choose(const std::vector<float>& logits, const std::vector<int32_t>& tokens) = 0;
  // Asked after each chosen token: true ends the sample there (a stop id or string). eos and the
  // length are the scheduler's.
  virtual bool stop(int32_t tok) = 0;
};

}  // namespace modelone
