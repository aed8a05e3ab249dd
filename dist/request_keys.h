// Reading a request's keys under OpenAI's names (batch job lines, the server's bodies): token
// ids, numbers, the sampling keys and stop strings. Each problem is one Error naming the key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/sample/sampler.h"

namespace modelone {

// A token id in [0, vocab) from its decimal text; `flag` starts the error ("--stop-ids: ...").
int32_t parse_token_id(const std::string& s, const char* flag, int64_t vocab);
double json_number(const nlohmann::json& j, const char* key);
int64_t json_integer(const nlohmann::json& j, const char* key);
// temperature, top_p, top_k, min_p, the three penalties, seed, logit_bias into p.
void sampling_keys(const nlohmann::json& j, int64_t vocab, SamplingParams* p);
// OpenAI's stop: a string or an array of non-empty strings (null: none).
std::vector<std::string> stop_strings(const nlohmann::json& s);

}  // namespace modelone
