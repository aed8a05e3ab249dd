// The OpenAI-style answers: see responses.h.
#include "dist/serve/responses.h"

#include "dist/serve/chat_format.h"

namespace modelone {

using nlohmann::json;

void ReasoningSplit::push(const std::string& text, std::string* reasoning, std::string* content) {
  if (!in_reasoning_) {
    *content += text;
    return;
  }
  held_ += text;
  const std::string end = kThinkEnd;
  const size_t at = held_.find(end);
  if (at != std::string::npos) {
    *reasoning += held_.substr(0, at);
    *content += held_.substr(at + end.size());
    held_.clear();
    in_reasoning_ = false;
    return;
  }
  // Keep back the longest tail that could start the marker.
  size_t keep = 0;
  for (size_t k = std::min(end.size() - 1, held_.size()); k > 0; --k)
    if (held_.compare(held_.size() - k, k, end, 0, k) == 0) {
      keep = k;
      break;
    }
  *reasoning += held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
}

void ReasoningSplit::finish(std::string* reasoning, std::string* content) {
  (in_reasoning_ ? *reasoning : *content) += held_;
  held_.clear();
}

namespace {
std::string token_text(const Tokenizer* tok, int32_t id) {
  return tok ? tok->token_bytes(id) : "token_id:" + std::to_string(id);
}

json chat_entry(const Tokenizer* tok, int32_t id, float lp) {
  const std::string t = token_text(tok, id);
  return {{"token", t}, {"logprob", lp}, {"bytes", std::vector<int>(t.begin(), t.end())}};
}
}  // namespace

json logprobs_json(Endpoint kind, const Tokenizer* tok, const std::vector<int32_t>& ids,
                   const std::vector<float>& logprob, const TopLogprobs& top, int64_t offset) {
  if (kind == Endpoint::Chat) {
    json content = json::array();
    for (size_t i = 0; i < ids.size(); ++i) {
      json e = chat_entry(tok, ids[i], logprob[i]);
      e["top_logprobs"] = json::array();
      for (const auto& [id, lp] : top[i]) e["top_logprobs"].push_back(chat_entry(tok, id, lp));
      content.push_back(e);
    }
    return {{"content", content}};
  }
  json j = {{"tokens", json::array()}, {"token_logprobs", logprob}, {"top_logprobs", json::array()},
            {"text_offset", json::array()}};
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string t = token_text(tok, ids[i]);
    j["tokens"].push_back(t);
    j["text_offset"].push_back(offset);
    offset += tok ? int64_t(t.size()) : 0;
    json alts = json::object();
    for (const auto& [id, lp] : top[i]) alts[token_text(tok, id)] = lp;
    j["top_logprobs"].push_back(alts);
  }
  return j;
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
json head(const ApiRequest& r, const AnswerHead& h, const char* chat_object, const char* completion_object) {
  return {{"id", h.id}, {"object", r.kind == Endpoint::Chat ? chat_object : completion_object},
          {"created", h.created}, {"model", h.model}};
}
}  // namespace

json answer_json(const ApiRequest& r, const AnswerHead& h, const std::vector<ChoiceResult>& choices,
                 const json& usage) {
  json j = head(r, h, "chat.completion", "text_completion");
  j["choices"] = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    json choice = {{"index", i}, {"finish_reason", c.finish_reason}, {"logprobs", nullptr}};
    if (r.logprobs >= 0) choice["logprobs"] = logprobs_json(r.kind, h.tokenizer, c.tokens, c.logprob, c.top);
    if (r.kind == Endpoint::Chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.content}};
      if (r.thinking) choice["message"]["reasoning_content"] = c.reasoning;
    } else {
      choice["text"] = c.content;
    }
    choice["token_ids"] = c.tokens;  // beside OpenAI's fields: models without a tokenizer
    j["choices"].push_back(choice);
  }
  j["usage"] = usage;
  return j;
}

json chunk_json(const ApiRequest& r, const AnswerHead& h, int64_t index, const std::string& reasoning,
                const std::string& content, const std::vector<int32_t>& tokens,
                const std::string& finish_reason, bool first, const json& logprobs) {
  json j = head(r, h, "chat.completion.chunk", "text_completion");
  json choice = {{"index", index}, {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}};
  if (r.kind == Endpoint::Chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!content.empty() || (first && reasoning.empty())) delta["content"] = content;
    if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
    choice["delta"] = delta;
  } else {
    choice["text"] = content;
  }
  choice["logprobs"] = logprobs;
  if (!tokens.empty()) choice["token_ids"] = tokens;
  j["choices"] = json::array({choice});
  return j;
}

json usage_chunk_json(const ApiRequest& r, const AnswerHead& h, const json& usage) {
  json j = head(r, h, "chat.completion.chunk", "text_completion");
  j["choices"] = json::array();
  j["usage"] = usage;
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace modelone
