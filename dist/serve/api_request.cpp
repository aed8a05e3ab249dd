// Reading OpenAI-style request bodies: see api_request.h.
#include "dist/serve/api_request.h"

#include <algorithm>
#include <set>

#include "dist/request_keys.h"
#include "dist/serve/chat_format.h"
#include "model/base/check.h"

namespace modelone {

using nlohmann::json;

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type}, {"param", param.empty() ? json() : json(param)},
                     {"code", json()}}}};
}

namespace {

// Keys this server does not do yet: refused by name rather than ignored (an answer without the
// tool calls or log probabilities asked for would look like the model's choice).
const std::set<std::string> kUnsupported = {"tools", "functions", "tool_choice", "function_call",
                                            "suffix", "best_of",
                                            "response_format", "echo"};

bool truthy(const json& v) {
  return !(v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_number() && v.get<double>() == 0));
}

bool boolean(const json& j, const char* key, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) throw ApiError(400, std::string(key) + " must be true or false", "invalid_request_error", key);
  return j[key].get<bool>();
}

int64_t integer(const json& j, const char* key, int64_t dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number_integer()) throw ApiError(400, std::string(key) + " must be an integer", "invalid_request_error", key);
  return j[key].get<int64_t>();
}

std::vector<int32_t> checked_ids(const json& a, const ModelConfig& cfg) {
  std::vector<int32_t> ids;
  for (const json& v : a) {
    if (!v.is_number_integer()) throw ApiError(400, "prompt: a list prompt holds token ids (integers)", "invalid_request_error", "prompt");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= cfg.vocab_size)
      throw ApiError(400, "prompt: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(cfg.vocab_size) + ")", "invalid_request_error", "prompt");
    ids.push_back(int32_t(id));
  }
  return ids;
}

// The tokenizer's ids of text; a chat prompt writes its BOS itself, so the post-processor's copy
// in front of it is dropped.
std::vector<int32_t> encode(const std::string& text, const ApiContext& ctx, const char* param) {
  if (!ctx.tokenizer) throw ApiError(400, std::string(param) + " as text needs the model's tokenizer.json (this model has none): give token ids", "invalid_request_error", param);
  std::vector<int32_t> ids;
  try {
    ids = ctx.tokenizer->encode(text);
  } catch (const std::exception& e) {
    throw ApiError(400, std::string(param) + ": " + e.what(), "invalid_request_error", param);
  }
  const std::vector<int32_t>& pre = ctx.tokenizer->prefix_ids();
  const size_t P = pre.size();
  if (P > 0 && ids.size() >= 2 * P && std::equal(pre.begin(), pre.end(), ids.begin()) &&
      std::equal(pre.begin(), pre.end(), ids.begin() + long(P)))
    ids.erase(ids.begin(), ids.begin() + long(P));
  return ids;
}

std::vector<int32_t> completion_prompt(const json& j, const ApiContext& ctx) {
  if (!j.contains("prompt")) throw ApiError(400, "prompt is missing", "invalid_request_error", "prompt");
  const json& p = j["prompt"];
  if (p.is_string()) return encode(p.get<std::string>(), ctx, "prompt");
  if (p.is_array() && p.size() == 1 && p[0].is_string()) return encode(p[0].get<std::string>(), ctx, "prompt");
  if (p.is_array() && p.size() == 1 && p[0].is_array()) return checked_ids(p[0], *ctx.cfg);
  if (p.is_array()) return checked_ids(p, *ctx.cfg);
  throw ApiError(400, "prompt must be a string or a list of token ids", "invalid_request_error", "prompt");
}

// chat_template_kwargs {"thinking": true} (as vLLM and SGLang take it) or top-level "thinking".
bool thinking_mode(const json& j) {
  bool t = boolean(j, "thinking", false);
  if (j.contains("chat_template_kwargs") && j["chat_template_kwargs"].is_object())
    t = boolean(j["chat_template_kwargs"], "thinking", t);
  return t;
}

std::vector<int32_t> chat_prompt(const json& j, const ApiContext& ctx, bool thinking) {
  if (!j.contains("messages")) throw ApiError(400, "messages is missing", "invalid_request_error", "messages");
  std::string text;
  try {
    text = encode_chat(j["messages"], thinking ? ChatMode::Thinking : ChatMode::Chat);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "messages");
  }
  return encode(text, ctx, "messages");
}

void generation_keys(const json& j, const ApiContext& ctx, ApiRequest* r) {
  r->gen = ctx.defaults;
  const int64_t room = ctx.max_positions - int64_t(r->prompt.size());
  if (room < 1)
    throw ApiError(400, "the prompt is " + std::to_string(r->prompt.size()) + " tokens; the model holds " +
                            std::to_string(ctx.max_positions) + " positions", "invalid_request_error", "prompt");
  int64_t max_tokens = integer(j, "max_tokens", -1);
  max_tokens = integer(j, "max_completion_tokens", max_tokens);
  if (max_tokens == -1) max_tokens = std::min<int64_t>(room, ctx.defaults.max_tokens > 0 ? ctx.defaults.max_tokens : 256);
  if (max_tokens < 1) throw ApiError(400, "max_tokens must be 1 or more", "invalid_request_error", "max_tokens");
  if (max_tokens > room)
    throw ApiError(400, "the prompt (" + std::to_string(r->prompt.size()) + " tokens) and max_tokens " +
                            std::to_string(max_tokens) + " need more than the model's " +
                            std::to_string(ctx.max_positions) + " positions", "invalid_request_error", "max_tokens");
  r->gen.max_tokens = max_tokens;
  r->gen.ignore_eos = boolean(j, "ignore_eos", r->gen.ignore_eos);
  r->n = integer(j, "n", 1);
  if (r->n < 1 || r->n > 64) throw ApiError(400, "n must be in [1, 64]", "invalid_request_error", "n");
  try {
    if (j.contains("stop")) r->gen.stop = stop_strings(j["stop"]);
    sampling_keys(j, ctx.cfg->vocab_size, &r->gen.sampling);
    r->gen.sampling.validate(ctx.cfg->vocab_size);
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  if (!r->gen.stop.empty() && !ctx.tokenizer)
    throw ApiError(400, "stop strings need the model's tokenizer.json (this model has none)", "invalid_request_error", "stop");
}

// Completions: logprobs N (0-5). Chat: logprobs true, with top_logprobs N (0-20).
int64_t logprobs_wanted(Endpoint kind, const json& j) {
  if (kind == Endpoint::Completions) {
    const int64_t n = integer(j, "logprobs", -1);
    if (n < -1 || n > 5) throw ApiError(400, "logprobs must be in [0, 5]", "invalid_request_error", "logprobs");
    return n;
  }
  const int64_t top = integer(j, "top_logprobs", -1);
  if (top < -1 || top > 20) throw ApiError(400, "top_logprobs must be in [0, 20]", "invalid_request_error", "top_logprobs");
  if (!boolean(j, "logprobs", false)) {
    if (top > 0) throw ApiError(400, "top_logprobs needs logprobs: true", "invalid_request_error", "top_logprobs");
    return -1;
  }
  return std::max<int64_t>(top, 0);
}

}  // namespace

ApiRequest parse_api_request(Endpoint kind, const std::string& body, const ApiContext& ctx) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "the body is not valid JSON (UTF-8)");
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object");
  for (const auto& [k, v] : j.items())
    if (kUnsupported.count(k) && truthy(v))
      throw ApiError(400, k + " is not supported by this server yet", "invalid_request_error", k);
  if (j.contains("model") && !(j["model"].is_string() && j["model"].get<std::string>() == ctx.model_name))
    throw ApiError(404, "the model " + j["model"].dump() + " does not exist: this server has '" +
                            ctx.model_name + "'", "invalid_request_error", "model");
  ApiRequest r;
  r.kind = kind;
  r.stream = boolean(j, "stream", false);
  if (j.contains("stream_options") && j["stream_options"].is_object())
    r.include_usage = boolean(j["stream_options"], "include_usage", false);
  r.thinking = kind == Endpoint::Chat && thinking_mode(j);
  r.prompt = kind == Endpoint::Chat ? chat_prompt(j, ctx, r.thinking) : completion_prompt(j, ctx);
  if (r.prompt.empty()) throw ApiError(400, "the prompt gives no tokens", "invalid_request_error", "prompt");
  generation_keys(j, ctx, &r);
  r.logprobs = logprobs_wanted(kind, j);
  if (ctx.bytes_needed) {
    const int64_t need = ctx.bytes_needed(int64_t(r.prompt.size()), r.gen.max_tokens, r.n);
    if (need > ctx.cache_budget)
      throw ApiError(400, "the request's caches need " + std::to_string(need >> 20) + " MiB, more than the " +
                              std::to_string(ctx.cache_budget >> 20) + " MiB of --cache-budget", "invalid_request_error", "max_tokens");
  }
  return r;
}

}  // namespace modelone
