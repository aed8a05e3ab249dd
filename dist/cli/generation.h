// One sequence's generation after its prompt: greedy or sampled (model/sample/sampler.h), ended
// by eos, stop ids, stop strings or the length, with its text streamed as it comes. run uses it
// for its sequence; batch jobs and the server will use it per request.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dist/engine.h"
#include "model/sample/sampler.h"
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

// Collective over the world, as Engine::generate. n_prompt: the prompt's length (penalties
// tell prompt from output). show(text): the text safe to show as it arrives (null: none).
// progress(i): after token i, on every rank.
Generation generate_sequence(Engine& engine, const GenerationSpec& spec, int64_t n_prompt,
                             const Tokenizer* tokenizer,
                             const std::function<void(const std::string&)>& show,
                             const std::function<void(int64_t)>& progress);

}  // namespace modelone
