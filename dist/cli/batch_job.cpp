// Batch jobs: see batch_job.h.
#include "dist/cli/batch_job.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "comm/clock.h"
#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/request_keys.h"
#include "dist/engine.h"
#include "dist/grid.h"
#include "model/base/check.h"

namespace modelone {

using nlohmann::json;

std::set<std::string> answered_ids(const std::string& out_text, const std::string& out_path,
                                   size_t* keep) {
  std::set<std::string> ids;
  *keep = 0;
  size_t at = 0;
  for (int64_t line = 1; at < out_text.size(); ++line) {
    const size_t end = out_text.find('\n', at);
    if (end == std::string::npos) break;  // cut by a kill mid-write: dropped, rewritten
    const json j = json::parse(out_text.begin() + long(at), out_text.begin() + long(end), nullptr, false);
    MO_REQUIRE(!j.is_discarded() && j.is_object() && j.contains("id") && j.contains("finish_reason"),
               "--out ", out_path, " line ", line, " is not an answer of a batch job (JSON with id "
               "and finish_reason): move the file away or name another");
    ids.insert(j["id"].dump());
    at = end + 1;
    *keep = at;
  }
  return ids;
}

namespace {

const std::set<std::string> kKeys = {"id", "prompt", "ids", "max_tokens", "temperature", "top_p",
                                     "top_k", "min_p", "seed", "stop", "presence_penalty",
                                     "frequency_penalty", "repetition_penalty", "logit_bias", "n",
                                     "ignore_eos"};

std::vector<int32_t> prompt_ids(const json& j, const Tokenizer* tokenizer, const ModelConfig& cfg) {
  MO_REQUIRE(j.contains("prompt") != j.contains("ids"), "give the prompt as one of prompt (text) "
             "and ids (token ids)");
  std::vector<int32_t> ids;
  if (j.contains("prompt")) {
    MO_REQUIRE(j["prompt"].is_string(), "prompt must be a string (token ids go under ids)");
    MO_REQUIRE(tokenizer, "prompt needs the model's tokenizer.json (this model has none): give ids");
    ids = tokenizer->encode(j["prompt"].get<std::string>());
  } else {
    MO_REQUIRE(j["ids"].is_array(), "ids must be an array of token ids");
    for (const json& v : j["ids"]) ids.push_back(int32_t(json_integer(v, "each of ids")));
  }
  MO_REQUIRE(!ids.empty(), "the prompt gives no tokens");
  for (int32_t id : ids)
    MO_REQUIRE(id >= 0 && id < cfg.vocab_size, "token id ", id, " is outside the vocabulary [0, ",
               cfg.vocab_size, ")");
  return ids;
}

// One input line as a request; throws Error on anything wrong with it.
BatchRequest parse_request(const json& j, const GenerationSpec& defaults,
                           const Tokenizer* tokenizer, const ModelConfig& cfg) {
  MO_REQUIRE(j.is_object(), "not a JSON object");
  for (const auto& [k, v] : j.items()) MO_REQUIRE(kKeys.count(k), "unknown key '", k, "'");
  MO_REQUIRE(j.contains("id") && (j["id"].is_string() || j["id"].is_number_integer()),
             "id (a string or an integer) is missing");
  BatchRequest r;
  r.id = j["id"];
  r.ids = prompt_ids(j, tokenizer, cfg);
  r.gen = defaults;
  if (j.contains("max_tokens")) r.gen.max_tokens = json_integer(j["max_tokens"], "max_tokens");
  MO_REQUIRE(r.gen.max_tokens >= 1, "max_tokens ", r.gen.max_tokens, " must be 1 or more");
  if (j.contains("ignore_eos")) {
    MO_REQUIRE(j["ignore_eos"].is_boolean(), "ignore_eos must be true or false");
    r.gen.ignore_eos = j["ignore_eos"].get<bool>();
  }
  if (j.contains("n")) r.n = json_integer(j["n"], "n");
  MO_REQUIRE(r.n >= 1 && r.n <= 64, "n ", r.n, " is outside [1, 64]");
  if (j.contains("stop")) {
    r.gen.stop = stop_strings(j["stop"]);
    MO_REQUIRE(r.gen.stop.empty() || tokenizer, "stop needs the model's tokenizer.json (this model has none)");
  }
  sampling_keys(j, cfg.vocab_size, &r.gen.sampling);
  r.gen.sampling.validate(cfg.vocab_size);
  const int64_t need = int64_t(r.ids.size()) + r.gen.max_tokens;
  MO_REQUIRE(need <= cfg.max_position_embeddings, "the prompt (", r.ids.size(), " tokens) and ",
             "max_tokens ", r.gen.max_tokens, " need ", need, " positions; the model has ",
             cfg.max_position_embeddings);
  return r;
}

}  // namespace

BatchInput parse_batch(const std::string& text, const std::string& path,
                       const GenerationSpec& defaults, const Tokenizer* tokenizer,
                       const ModelConfig& cfg, const std::set<std::string>& answered) {
  BatchInput in;
  in.path = path;
  std::set<std::string> seen;
  std::stringstream ss(text);
  std::string line;
  for (int64_t k = 1; std::getline(ss, line); ++k) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    try {
      const json j = json::parse(line, nullptr, false);
      MO_REQUIRE(!j.is_discarded(), "not valid JSON");
      BatchRequest r = parse_request(j, defaults, tokenizer, cfg);
      r.line = k;
      MO_REQUIRE(seen.insert(r.id.dump()).second, "id ", r.id.dump(), " comes twice");
      if (answered.count(r.id.dump())) {
        ++in.answered;
        continue;
      }
      in.longest = std::max<int64_t>(in.longest, int64_t(r.ids.size()) + r.gen.max_tokens);
      in.todo.push_back(std::move(r));
    } catch (const Error& e) {
      in.errors.push_back(path + " line " + std::to_string(k) + ": " + e.what());
    }
  }
  return in;
}

json answer_json(const BatchRequest& r, const std::vector<Generation>& samples, bool with_text,
                 double prefill_s, double decode_s, double queue_s) {
  auto choice = [&](const Generation& g) {
    json c = {{"tokens", g.tokens}, {"finish_reason", g.finish_reason}};
    if (with_text) c["text"] = g.text;
    return c;
  };
  json j = choice(samples.front());
  j["id"] = r.id;
  int64_t completion = 0;
  for (const Generation& g : samples) completion += int64_t(g.tokens.size());
  j["prompt_tokens"] = r.ids.size();
  j["completion_tokens"] = completion;
  j["timings"] = {{"queue_seconds", queue_s}, {"prefill_seconds", prefill_s}, {"decode_seconds", decode_s}};
  if (samples.size() > 1) {
    j["choices"] = json::array();
    for (size_t i = 0; i < samples.size(); ++i) {
      json c = choice(samples[i]);
      c["index"] = i;
      j["choices"].push_back(c);
    }
  }
  return j;
}

}  // namespace modelone
