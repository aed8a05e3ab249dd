#include "dist/serve/chat_format.h"

#include <vector>

#include "model/base/check.h"

namespace modelone {

namespace {

using nlohmann::json;

enum class Role { System, User, Assistant };

struct Message {
  Role role;
  std::string content;
  std::string reasoning;  // an assistant's reasoning_content
};

Role role_of(const json& m, size_t i) {
  const auto it = m.find("role");
  MO_REQUIRE(it != m.end() && it->is_string(), "message ", i,
             ": no \"role\" string (system, user or assistant)");
  const std::string role = it->get<std::string>();
  if (role == "system") return Role::System;
  if (role == "user") return Role::User;
  if (role == "assistant") return Role::Assistant;
  fail("message ", i, ": role \"", printable(role),
       "\" is not supported (system, user or assistant; tool and developer roles are not "
       "supported yet)");
}

// A string, or the texts of an array of text parts run together (what OpenAI clients send for
// multi-part messages). null (or no content) only for an assistant, whose turn may be empty.
std::string content_of(const json& m, size_t i, Role role) {
  const auto it = m.find("content");
  if (role == Role::Assistant && (it == m.end() || it->is_null())) return "";
  MO_REQUIRE(it != m.end() && (it->is_string() || it->is_array()), "message ", i,
             ": content must be a string or an array of text parts");
  if (it->is_string()) return it->get<std::string>();
  std::string text;
  for (size_t j = 0; j < it->size(); ++j) {
    const json& part = (*it)[j];
    MO_REQUIRE(part.is_object() && part.value("type", json()) == "text", "message ", i,
               ": content part ", j, " is not a text part (only {\"type\": \"text\"} parts are "
               "supported)");
    const auto t = part.find("text");
    MO_REQUIRE(t != part.end() && t->is_string(), "message ", i, ": content part ", j,
               ": \"text\" must be a string");
    text += t->get<std::string>();
  }
  return text;
}

std::vector<Message> parse(const json& messages) {
  MO_REQUIRE(messages.is_array() && !messages.empty(), "messages must be a non-empty array");
  std::vector<Message> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    MO_REQUIRE(m.is_object(), "message ", i, ": must be an object");
    Message msg{role_of(m, i), "", ""};
    msg.content = content_of(m, i, msg.role);
    const auto r = m.find("reasoning_content");
    if (r != m.end() && !r->is_null()) {
      MO_REQUIRE(r->is_string(), "message ", i, ": reasoning_content must be a string");
      msg.reasoning = r->get<std::string>();
    }
    out.push_back(std::move(msg));
  }
  // The prompt is for the model's next reply, which answers a user turn.
  MO_REQUIRE(out.back().role == Role::User, "message ", out.size() - 1,
             ": the conversation must end with a user message");
  return out;
}

// encoding_dsv4.py's render_message for message i.
std::string render(const std::vector<Message>& ms, size_t i, long last_user, ChatMode mode) {
  const Message& m = ms[i];
  const bool thinking = mode == ChatMode::Thinking;
  std::string out;
  if (m.role == Role::System) out = m.content;
  if (m.role == Role::User) out = kUser + m.content;
  if (m.role == Role::Assistant) {
    // drop_thinking: only turns after the last user message keep their reasoning.
    const bool keep = thinking && long(i) > last_user;
    out = (keep ? m.reasoning + kThinkEnd : std::string()) + m.content + kEos;
  }
  // A user turn that an assistant answers (or the model is to answer) opens that answer; older
  // user turns close the thinking block at once, since their reasoning was dropped.
  const bool answered = i + 1 == ms.size() || ms[i + 1].role == Role::Assistant;
  if (answered && m.role == Role::User) {
    out += kAssistant;
    out += thinking && long(i) >= last_user ? kThinkStart : kThinkEnd;
  }
  return out;
}

}  // namespace

std::string encode_chat(const nlohmann::json& messages, ChatMode mode) {
  const std::vector<Message> ms = parse(messages);
  long last_user = -1;
  for (size_t i = 0; i < ms.size(); ++i) {
    if (ms[i].role == Role::User) last_user = long(i);
  }
  std::string prompt = kBos;
  for (size_t i = 0; i < ms.size(); ++i) prompt += render(ms, i, last_user, mode);
  return prompt;
}

}  // namespace modelone
