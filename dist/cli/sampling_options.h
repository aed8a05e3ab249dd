// The sampling flags of run (and later of batch jobs and the server, under the same names):
// --temperature, --top-k, --top-p, --min-p, the three penalties, --logit-bias, --sample-seed,
// --stop (strings) and --stop-ids; parsed into model/sample/sampler.h's SamplingParams.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "dist/request_keys.h"  // parse_token_id
#include "model/sample/sampler.h"

namespace modelone {

struct SampleCli {
  double temperature = 0, top_p = 1, min_p = 0;
  double repetition_penalty = 1, presence_penalty = 0, frequency_penalty = 0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  std::string logit_bias;           // "id:bias,id:bias"
  std::vector<std::string> stop;    // stop strings (need a tokenizer)
  std::string stop_ids;             // "id,id"
};

void add_sampling_options(CLI::App* app, SampleCli* o);
// The parameters, checked against the vocabulary; throws Error naming the flag or value.
SamplingParams sampling_params(const SampleCli& o, int64_t vocab);
std::vector<int32_t> stop_token_ids(const SampleCli& o, int64_t vocab);

}  // namespace modelone
