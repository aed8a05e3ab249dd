// dist/serve/chat_format.h: messages to DeepSeek-V4's prompt text, against strings written by
// hand from encoding_dsv4.py's rules (the first three are the brief's worked examples), and the
// bad inputs it refuses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dist/serve/chat_format.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

using json = nlohmann::json;

const std::string B = kBos, E = kEos, U = kUser, A = kAssistant, TS = kThinkStart,
                  TE = kThinkEnd;

json msg(const char* role, const json& content) { return {{"role", role}, {"content", content}}; }

json reasoned(const char* content, const char* reasoning) {
  json m = msg("assistant", content);
  m["reasoning_content"] = reasoning;
  return m;
}

struct Case {
  const char* name;
  json messages;
  ChatMode mode;
  std::string prompt;
};

std::vector<Case> cases() {
  const json two_turns = json::array(
      {msg("user", "hello"), reasoned("Hello! I am DeepSeek.", "thinking..."), msg("user", "1+1=?")});
  return {
      {"one user, chat", json::array({msg("user", "hi")}), ChatMode::Chat, B + U + "hi" + A + TE},
      {"one user, thinking", json::array({msg("user", "hi")}), ChatMode::Thinking,
       B + U + "hi" + A + TS},
      {"system then user", json::array({msg("system", "You are a helpful assistant."), msg("user", "hi")}),
       ChatMode::Chat, B + "You are a helpful assistant." + U + "hi" + A + TE},
      // History reasoning is dropped: the old user turn closes the thinking block at once.
      {"two turns, thinking", two_turns, ChatMode::Thinking,
       B + U + "hello" + A + TE + "Hello! I am DeepSeek." + E + U + "1+1=?" + A + TS},
      {"two turns, chat", two_turns, ChatMode::Chat,
       B + U + "hello" + A + TE + "Hello! I am DeepSeek." + E + U + "1+1=?" + A + TE},
      {"three turns, thinking",
       json::array({msg("system", "S"), msg("user", "a"), reasoned("x", "r1"), msg("user", "b"),
                    reasoned("y", "r2"), msg("user", "c")}),
       ChatMode::Thinking,
       B + "S" + U + "a" + A + TE + "x" + E + U + "b" + A + TE + "y" + E + U + "c" + A + TS},
      {"text parts run together",
       json::array({msg("user", json::array({{{"type", "text"}, {"text", "Hello, "}},
                                             {{"type", "text"}, {"text", "world"}}}))}),
       ChatMode::Chat, B + U + "Hello, world" + A + TE},
      {"null assistant content", json::array({msg("user", "a"), msg("assistant", nullptr), msg("user", "b")}),
       ChatMode::Chat, B + U + "a" + A + TE + E + U + "b" + A + TE},
      // Two user messages in a row: only the last opens an answer.
      {"consecutive users", json::array({msg("user", "a"), msg("user", "b")}), ChatMode::Thinking,
       B + U + "a" + U + "b" + A + TS},
      {"empty user content", json::array({msg("user", "")}), ChatMode::Thinking, B + U + A + TS},
  };
}

TEST(ChatFormat, Prompts) {
  for (const Case& c : cases()) {
    EXPECT_EQ(encode_chat(c.messages, c.mode), c.prompt) << c.name;
  }
}

TEST(ChatFormat, TokensAreTheVocabularysFullwidthForms) {
  EXPECT_EQ(std::string(kBos), "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
  EXPECT_EQ(std::string(kEos), "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
  EXPECT_EQ(std::string(kUser), "<\xEF\xBD\x9CUser\xEF\xBD\x9C>");
  EXPECT_EQ(std::string(kAssistant), "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>");
}

struct Bad {
  json messages;
  const char* phrase;
};

TEST(ChatFormat, BadInputsNameTheProblem) {
  const json user = msg("user", "hi");
  const std::vector<Bad> bad = {
      {json::object(), "messages must be a non-empty array"},
      {json::array(), "messages must be a non-empty array"},
      {json::array({"hi"}), "message 0: must be an object"},
      {json::array({{{"content", "hi"}}}), "message 0: no \"role\""},
      {json::array({msg("tool", "x"), user}), "tool and developer roles are not supported yet"},
      {json::array({msg("developer", "x"), user}), "role \"developer\" is not supported"},
      {json::array({msg("user", 42)}), "message 0: content must be a string or an array"},
      {json::array({msg("user", nullptr)}), "message 0: content must be a string or an array"},
      {json::array({{{"role", "user"}}}), "message 0: content must be a string or an array"},
      {json::array({msg("user", json::array({{{"type", "image_url"}}}))}),
       "message 0: content part 0 is not a text part"},
      {json::array({msg("user", json::array({{{"type", "text"}, {"text", 1}}}))}),
       "content part 0: \"text\" must be a string"},
      {json::array({user, msg("assistant", "x")}),
       "message 1: the conversation must end with a user message"},
      {json::array({msg("system", "s")}), "the conversation must end with a user message"},
      {json::array({user, {{"role", "assistant"}, {"content", "x"}, {"reasoning_content", 3}}, user}),
       "message 1: reasoning_content must be a string"},
  };
  for (const Bad& b : bad) {
    const std::string e = error_of([&] { encode_chat(b.messages, ChatMode::Thinking); });
    EXPECT_NE(e.find(b.phrase), std::string::npos) << b.messages.dump() << " gave: " << e;
  }
}

}  // namespace
}  // namespace modelone::test
