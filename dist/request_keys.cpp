// Request keys under OpenAI's names: see request_keys.h.
#include "dist/request_keys.h"

#include "model/base/check.h"

namespace modelone {

using nlohmann::json;

int32_t parse_token_id(const std::string& s, const char* flag, int64_t vocab) {
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MO_REQUIRE(used == s.size() && !s.empty(), flag, ": '", s, "' is not a token id");
  MO_REQUIRE(v >= 0 && v < vocab, flag, ": token id ", v, " is outside the vocabulary [0, ", vocab, ")");
  return int32_t(v);
}

double json_number(const json& j, const char* key) {
  MO_REQUIRE(j.is_number(), key, " must be a number, not ", j.dump());
  return j.get<double>();
}

int64_t json_integer(const json& j, const char* key) {
  MO_REQUIRE(j.is_number_integer(), key, " must be an integer, not ", j.dump());
  return j.get<int64_t>();
}

void sampling_keys(const json& j, int64_t vocab, SamplingParams* p) {
  if (j.contains("temperature")) p->temperature = json_number(j["temperature"], "temperature");
  if (j.contains("top_p")) p->top_p = json_number(j["top_p"], "top_p");
  if (j.contains("top_k")) p->top_k = json_integer(j["top_k"], "top_k");
  if (j.contains("min_p")) p->min_p = json_number(j["min_p"], "min_p");
  if (j.contains("presence_penalty")) p->presence_penalty = json_number(j["presence_penalty"], "presence_penalty");
  if (j.contains("frequency_penalty")) p->frequency_penalty = json_number(j["frequency_penalty"], "frequency_penalty");
  if (j.contains("repetition_penalty")) p->repetition_penalty = json_number(j["repetition_penalty"], "repetition_penalty");
  if (j.contains("seed")) {
    MO_REQUIRE(j["seed"].is_number_integer() && j["seed"].get<int64_t>() >= 0, "seed must be a "
               "non-negative integer, not ", j["seed"].dump());
    p->seed = j["seed"].get<uint64_t>();
  }
  if (j.contains("logit_bias")) {  // OpenAI: {"token id": bias}
    MO_REQUIRE(j["logit_bias"].is_object(), "logit_bias must be an object of token id: bias");
    p->logit_bias.clear();
    for (const auto& [k, v] : j["logit_bias"].items())
      p->logit_bias.emplace_back(parse_token_id(k, "logit_bias", vocab),
                                 float(json_number(v, "a logit_bias value")));
  }
}

std::vector<std::string> stop_strings(const json& s) {
  std::vector<std::string> stop;
  if (s.is_null()) return stop;  // OpenAI's clients send null for none
  if (s.is_string()) {
    stop.push_back(s.get<std::string>());
  } else {
    MO_REQUIRE(s.is_array(), "stop must be a string or an array of strings");
    for (const json& v : s) {
      MO_REQUIRE(v.is_string(), "stop must be a string or an array of strings");
      stop.push_back(v.get<std::string>());
    }
  }
  for (const std::string& t : stop) MO_REQUIRE(!t.empty(), "a stop string is empty");
  return stop;
}

}  // namespace modelone
