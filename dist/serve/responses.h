// The OpenAI-style answers: a whole completion or chat completion, and the server-sent events of
// a streamed one (each `data: {chunk}` then `data: [DONE]`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/serve/api_request.h"

namespace modelone {

// A chat answer in thinking mode starts with its reasoning, up to "</think>": the text of each
// piece goes to reasoning_content until then and to content after, the marker to neither (a
// piece that may begin the marker is held back until the next).
class ReasoningSplit {
 public:
  explicit ReasoningSplit(bool thinking) : in_reasoning_(thinking) {}
  void push(const std::string& text, std::string* reasoning, std::string* content);
  void finish(std::string* reasoning, std::string* content);

 private:
  bool in_reasoning_;
  std::string held_;
};

using TopLogprobs = std::vector<std::vector<std::pair<int32_t, float>>>;  // per token: (id, logprob)

// One choice of a finished answer.
struct ChoiceResult {
  std::vector<int32_t> tokens;
  std::string reasoning, content, finish_reason;
  std::vector<float> logprob;  // with logprobs: per token
  TopLogprobs top;
};

// What every answer of a request carries, and the tokenizer that names tokens in logprobs
// (null: "token_id:N", as vLLM writes ids).
struct AnswerHead {
  std::string id, model;
  int64_t created = 0;
  const Tokenizer* tokenizer = nullptr;
};

// OpenAI's logprobs object of tokens: completions' (tokens, token_logprobs, top_logprobs,
// text_offset from `offset`) or chat's (content: token, logprob, bytes, top_logprobs).
nlohmann::json logprobs_json(Endpoint kind, const Tokenizer* tok, const std::vector<int32_t>& ids,
                             const std::vector<float>& logprob, const TopLogprobs& top, int64_t offset = 0);

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json answer_json(const ApiRequest& r, const AnswerHead& h, const std::vector<ChoiceResult>& choices,
                           const nlohmann::json& usage);
// A streamed piece of choice `index`: its new text (and reasoning), and its end when
// finish_reason is not empty. first: the chat's opening delta with the role.
nlohmann::json chunk_json(const ApiRequest& r, const AnswerHead& h, int64_t index, const std::string& reasoning,
                          const std::string& content, const std::vector<int32_t>& tokens,
                          const std::string& finish_reason, bool first,
                          const nlohmann::json& logprobs = nullptr);
nlohmann::json usage_chunk_json(const ApiRequest& r, const AnswerHead& h, const nlohmann::json& usage);
// "data: <json>\n\n" (invalid UTF-8 replaced).
std::string sse(const nlohmann::json& j);
std::string dump(const nlohmann::json& j);

}  // namespace modelone
