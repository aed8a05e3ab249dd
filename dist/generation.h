// One sequence's generation after its prompt: greedy or sampled (model/sample/sampler.h), ended
// by eos, stop ids, stop strings or the length, with its text streamed as it comes. run uses it
// for its sequence; batch jobs and the server will use it per request.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/engine.h"
#include "dist/sample_driver.h"
#include "model/sample/sampler.h"
#include "model/sample/stop_strings.h"
#include "model/text/tokenizer.h"

namespace modelone {

struct GenerationSpec {
  int64_t max_tokens = 0;
  bool ignore_eos = false;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;
  std::vector<std::string> stop;  // stop strings: need a tokenizer
  uint64_t sequence = 0;          // the draw's key beside the seed and the position
};

struct Generation {
  std::vector<int32_t> tokens;
  std::string text;           // with a tokenizer: the tokens' text, cut before a stop string
  std::string finish_reason;  // "stop" (eos, a stop id or string) or "length"
};

// One sample's choice and end: the sampler (or argmax when nothing changes it) keyed by
// spec.sequence, stop ids, and stop strings over the text it keeps (every rank of the group keeps
// its own copy, so the decision agrees without a message). show(text): the text safe to show as
// it arrives (null: none).
class SequenceGen : public SampleDriver {
 public:
  SequenceGen(const GenerationSpec& spec, int64_t n_prompt, const Tokenizer* tokenizer,
              const ModelConfig& cfg, std::function<void(const std::string&)> show = nullptr);
  int32_t choose(const std::vector<float>& logits, const std::vector<int32_t>& tokens) override;
  bool stop(int32_t tok) override;
  // The result once the sample has ended with `tokens` (its output).
  Generation finish(std::vector<int32_t> tokens);

 private:
  GenerationSpec spec_;
  int64_t n_prompt_;
  int32_t eos_;
  bool sampled_, stopped_ = false;
  std::unique_ptr<TextStream> stream_;
  std::unique_ptr<StopStrings> stops_;
  std::function<void(const std::string&)> show_;
};

// Collective over the world, as Engine::generate. n_prompt: the prompt's length (penalties
// tell prompt from output). show(text): the text safe to show as it arrives (null: none).
// progress(i): after token i, on every rank.
Generation generate_sequence(Engine& engine, const GenerationSpec& spec, int64_t n_prompt,
                             const Tokenizer* tokenizer,
                             const std::function<void(const std::string&)>& show,
                             const std::function<void(int64_t)>& progress);

}  // namespace modelone
