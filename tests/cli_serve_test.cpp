// `modelone serve`: the OpenAI-style server on 127.0.0.1, driven by an HTTP client (cpp-httplib's)
// and by curl for the raw server-sent events. Greedy answers must equal `modelone run`'s on the
// same prompt at np 1 and np 3; bad input gets its status and error object and the server goes
// on; a client that goes away frees its caches; SIGTERM ends every rank with status 0.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/cli_support.h"
#include "tests/serve_support.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::vector<int32_t>> kPrompts = {{5, 6, 7}, {1, 2}, {9, 10, 11, 12, 13, 14, 15, 16}, {3}};

TEST(CliServe, GreedyAnswersEqualRunAtNp1AndNp3) {
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : kPrompts) want.push_back(run_alone("tiny", p, 6));
  for (int np : {0, 3}) {
    SCOPED_TRACE("np " + std::to_string(np));
    Server s("--model tiny --compute fp32", np);
    ASSERT_GT(s.port(), 0) << s.err();
    std::vector<std::thread> clients;
    std::vector<json> got(kPrompts.size());
    for (size_t i = 0; i < kPrompts.size(); ++i)  // at once: they share batches
      clients.emplace_back([&, i] {
        got[i] = post(s, "/v1/completions", {{"prompt", kPrompts[i]}, {"max_tokens", 6}, {"ignore_eos", true}});
      });
    for (auto& t : clients) t.join();
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      ASSERT_TRUE(got[i].contains("choices")) << got[i].dump();
      EXPECT_EQ(got[i]["choices"][0]["token_ids"].get<std::vector<int32_t>>(), want[i]);
      EXPECT_EQ(got[i]["choices"][0]["finish_reason"], "length");
      EXPECT_EQ(got[i]["usage"]["prompt_tokens"], kPrompts[i].size());
      EXPECT_EQ(got[i]["usage"]["completion_tokens"], 6);
      EXPECT_EQ(got[i]["object"], "text_completion");
    }
    const json models = json::parse(s.client().Get("/v1/models")->body);
    EXPECT_EQ(models["data"][0]["id"], "tiny");
    EXPECT_EQ(s.client().Get("/health")->status, 200);
    EXPECT_EQ(s.stop(), 0) << s.err();
  }
}

// curl reads the raw stream: one data line per token, the usage chunk, then [DONE].
TEST(CliServe, StreamsServerSentEvents) {
  Server s("--model tiny --compute fp32", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  const std::string body = R"({"prompt":[5,6,7],"max_tokens":4,"ignore_eos":true,"stream":true,)"
                           R"("stream_options":{"include_usage":true}})";
  const Result r = shell("curl -sN http://127.0.0.1:" + std::to_string(s.port()) + "/v1/completions -d '" + body + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines;
  std::stringstream ss(r.out);
  for (std::string l; std::getline(ss, l);)
    if (!l.empty()) lines.push_back(l);
  ASSERT_EQ(lines.size(), 6u) << r.out;  // 4 tokens, usage, [DONE]
  std::vector<int32_t> toks;
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(lines[i].rfind("data: {", 0), 0u) << lines[i];
    const json c = json::parse(lines[i].substr(6));
    for (int32_t t : c["choices"][0]["token_ids"]) toks.push_back(t);
    EXPECT_EQ(c["choices"][0]["finish_reason"], i == 3 ? json("length") : json());
  }
  EXPECT_EQ(toks, run_alone("tiny", {5, 6, 7}, 4));
  EXPECT_EQ(json::parse(lines[4].substr(6))["usage"]["completion_tokens"], 4);
  EXPECT_EQ(lines[5], "data: [DONE]");
  EXPECT_EQ(s.stop(), 0);
}

// The official OpenAI Node client (npm's `openai`, which scripts/setup.sh unpacks into .deps/)
// runs tests/openai_client_test.mjs against the server: models, a whole and a streamed completion
// (equal to `modelone run`'s greedy ids), chat without a tokenizer (400), an unknown model (404).
TEST(CliServe, OfficialOpenAiClient) {
  const std::filesystem::path src = std::filesystem::path(__FILE__).parent_path().parent_path();
  if (shell("command -v node").code != 0) GTEST_SKIP() << "node is not on PATH (scripts/setup.sh installs nodejs)";
  if (!std::filesystem::exists(src / ".deps/node_modules/openai/package.json"))
    GTEST_SKIP() << "no " << (src / ".deps/node_modules/openai").string()
                 << " (scripts/setup.sh fetches the openai package with npm pack)";
  Server s("--model tiny --compute fp32", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  Server chat("--model " + chat_model() + " --compute fp32 --served-model-name chat", 0);
  ASSERT_GT(chat.port(), 0) << chat.err();
  const Result r = shell("timeout 120 node " + (src / "tests/openai_client_test.mjs").string() +
                         " http://127.0.0.1:" + std::to_string(s.port()) + "/v1 http://127.0.0.1:" +
                         std::to_string(chat.port()) + "/v1");
  ASSERT_EQ(r.code, 0) << r.out << r.err << s.err();
  const nlohmann::json got = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(got.is_object() && got.contains("completion")) << r.out;
  EXPECT_EQ(got["completion"]["token_ids"].get<std::vector<int32_t>>(), run_alone("tiny", {5, 6, 7}, 5)) << r.out;
  EXPECT_EQ(got["stream"]["token_ids"], got["completion"]["token_ids"]) << r.out;
  EXPECT_EQ(got["chat_error"]["status"], 400) << r.out;
  EXPECT_EQ(got["not_found"]["status"], 404) << r.out;
  // Chat through the client: the ids `run` gives after the prompt's ids in DeepSeek-V4's format.
  std::vector<int32_t> ids = {0};
  for (char ch : std::string("be brief")) ids.push_back(ch == ' ' ? 96 : byte_id(ch));
  for (int32_t id : {104, byte_id('h'), byte_id('i'), 105, 107}) ids.push_back(id);
  EXPECT_EQ(got["chat"]["token_ids"].get<std::vector<int32_t>>(), run_alone(chat_model(), ids, 5)) << r.out;
  EXPECT_EQ(got["chat"]["stream_token_ids"], got["chat"]["token_ids"]) << r.out;
  EXPECT_EQ(chat.stop(), 0) << chat.err();
  EXPECT_EQ(s.stop(), 0) << s.err();
}

}  // namespace
}  // namespace modelone::test
