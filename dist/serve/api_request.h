// The OpenAI-style requests the server takes (POST /v1/completions and /v1/chat/completions):
// their JSON bodies read into a prompt and a generation, with OpenAI's names and error objects.
// Every rank reads the same body the same way (rank 0 checks it first and answers the client
// with the error; the others read only bodies rank 0 accepted).
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/generation.h"
#include "model/config/config.h"
#include "model/text/tokenizer.h"

namespace modelone {

enum class Endpoint : uint8_t { Completions, Chat };

// An error a client gets back: an HTTP status and OpenAI's error object.
struct ApiError : std::runtime_error {
  int status;
  std::string type, param;
  ApiError(int s, const std::string& message, std::string t = "invalid_request_error", std::string p = "")
      : std::runtime_error(message), status(s), type(std::move(t)), param(std::move(p)) {}
  nlohmann::json body() const;  // {"error": {"message", "type", "param", "code"}}
};

// What requests are read against: the model, its tokenizer (null: prompts as token ids only),
// the name clients use for it, the command line's generation (the defaults) and the positions a
// sequence may hold.
struct ApiContext {
  const ModelConfig* cfg = nullptr;
  const Tokenizer* tokenizer = nullptr;
  std::string model_name;
  GenerationSpec defaults;
  int64_t max_positions = 0;
  // Bytes of caches a request needs (prompt, max_tokens, n) and the most a dp group holds.
  std::function<int64_t(int64_t, int64_t, int64_t)> bytes_needed;
  int64_t cache_budget = 0;
};

struct ApiRequest {
  Endpoint kind = Endpoint::Completions;
  std::vector<int32_t> prompt;
  GenerationSpec gen;
  int64_t n = 1;
  bool stream = false, include_usage = false;
  bool thinking = false;  // chat: the prompt opens a <think> block, so the answer starts with reasoning
  // Log probabilities of each chosen token and of the `logprobs` most likely ones (-1: none):
  // completions' `logprobs` (0-5), chat's `logprobs: true` with `top_logprobs` (0-20).
  int64_t logprobs = -1;
};

// Throws ApiError (status 400, or 404 for another model's name) naming what is wrong.
ApiRequest parse_api_request(Endpoint kind, const std::string& body, const ApiContext& ctx);

}  // namespace modelone
