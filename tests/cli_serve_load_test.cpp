// `modelone serve` under load and bad input: each bad request gets its status and OpenAI error
// object while the server goes on; DeepSeek-V4's chat format reaches the model as `run` would
// read the same ids; 200 requests from 64 clients at once, a tenth of them going away mid-stream,
// all others answered exactly, the caches back to empty, and SIGTERM ending every rank with 0.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/cli_support.h"
#include "tests/serve_support.h"
#include "tests/support.h"
#include "model/io/npy.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A raw HTTP POST over a socket: the response's body de-chunked, read until `stop_after` bytes of
// it arrived (then the client goes away) or the server ends it.
std::string raw_post(int port, const std::string& path, const std::string& body, size_t stop_after = SIZE_MAX) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  const std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)!::write(fd, req.data(), req.size());
  std::string raw, out;
  char buf[4096];
  size_t at = std::string::npos;
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
    raw.append(buf, size_t(n));
    if (at == std::string::npos && (at = raw.find("\r\n\r\n")) != std::string::npos) at += 4;
    // De-chunk what is complete so far.
    while (at != std::string::npos) {
      const size_t eol = raw.find("\r\n", at);
      if (eol == std::string::npos) break;
      const size_t len = std::stoul(raw.substr(at, eol - at), nullptr, 16);
      if (raw.size() < eol + 2 + len + 2) break;
      out += raw.substr(eol + 2, len);
      at = eol + 2 + len + 2;
      if (len == 0) at = std::string::npos;
    }
    if (out.size() >= stop_after) break;
  }
  ::close(fd);
  return out;
}

// The token ids of a stream's data lines, and whether it ended with [DONE].
std::vector<int32_t> stream_tokens(const std::string& sse, bool* done) {
  std::vector<int32_t> toks;
  *done = false;
  size_t at = 0;
  while ((at = sse.find("data: ", at)) != std::string::npos) {
    const size_t end = sse.find("\n\n", at);
    const std::string d = sse.substr(at + 6, end - at - 6);
    at = end;
    if (d == "[DONE]") {
      *done = true;
      break;
    }
    const json c = json::parse(d);
    if (!c["choices"].empty() && c["choices"][0].contains("token_ids"))
      for (int32_t t : c["choices"][0]["token_ids"]) toks.push_back(t);
  }
  return toks;
}

TEST(CliServeLoad, BadInputGetsItsStatusAndTheServerGoesOn) {
  Server s("--model tiny --compute fp32 --max-body 1", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  struct Case {
    std::string path, body;
    int status;
    std::string phrase;
  };
  const std::vector<Case> cases = {
      {"/v1/completions", "{bad", 400, "not valid JSON"},
      {"/v1/completions", "[1, 2]", 400, "JSON object"},
      {"/v1/completions", R"({"prompt": {"a": 1}})", 400, "prompt must be"},
      {"/v1/completions", R"({"prompt": [1], "max_tokens": "8"})", 400, "max_tokens must be an integer"},
      {"/v1/completions", R"({"prompt": [1], "model": "gpt-4"})", 404, "does not exist"},
      {"/v1/completions", R"({"prompt": [1], "max_tokens": 100000})", 400, "positions"},
      {"/v1/completions", "{\"prompt\": [" + std::string(70000 * 2 - 1, ' ') + "]}", 400, "prompt gives no tokens"},
      {"/v1/completions", R"({"prompt": [70000]})", 400, "outside the vocabulary"},
      {"/v1/completions", R"({"prompt": "text"})", 400, "tokenizer"},
      {"/v1/completions", "{\"prompt\": \"\xff\xfe\"}", 400, "not valid JSON"},
      {"/v1/completions", R"({"prompt": [1], "temperature": -0.5})", 400, "temperature"},
      {"/v1/completions", R"({"prompt": [1], "top_p": 1.5})", 400, "top_p"},
      {"/v1/completions", R"({"prompt": [1], "n": 0})", 400, "n must be"},
      {"/v1/completions", R"({"prompt": [1], "tools": [{"type": "function"}]})", 400, "not supported"},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "messages"},
      {"/v1/completions", "{\"prompt\": [1], \"pad\": \"" + std::string(2 << 20, 'x') + "\"}", 413, "larger"},
      {"/v1/nothing", "{}", 404, "no route"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path + " " + c.body.substr(0, 60));
    int status = 0;
    const json r = post(s, c.path, json::parse(c.body, nullptr, false).is_discarded() ? json() : json(), &status);
    (void)r;
    auto res = s.client().Post(c.path.c_str(), c.body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, c.status);
    const json e = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(e.contains("error")) << res->body;
    EXPECT_NE(e["error"]["message"].get<std::string>().find(c.phrase), std::string::npos) << res->body;
    EXPECT_TRUE(e["error"].contains("type"));
    // The next request is answered.
    const json ok = post(s, "/v1/completions", {{"prompt", {5, 6}}, {"max_tokens", 2}}, &status);
    EXPECT_EQ(status, 200) << ok.dump();
  }
  EXPECT_EQ(s.stop(), 0) << s.err();
}

TEST(CliServeLoad, KeyAndQueueLimits) {
  Server s("--model tiny --compute fp32 --api-key sesame --max-queue 1", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  auto c = s.client();
  auto res = c.Post("/v1/completions", R"({"prompt": [1], "max_tokens": 1})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_NE(res->body.find("API key"), std::string::npos);
  EXPECT_EQ(c.Get("/health")->status, 200);  // no key needed
  c.set_bearer_token_auth("sesame");
  // One long request holds the only place in the queue; the next gets 429, then (the first one
  // gone away) room again.
  std::atomic<bool> started{false}, leave{false};
  std::thread longer([&] {
    const std::string body = R"({"prompt": [1], "max_tokens": 60000, "ignore_eos": true, "stream": true})";
    auto l = s.client();
    l.set_bearer_token_auth("sesame");
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body;
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      started = true;
      return !leave;  // reads until told to go away
    };
    l.send(req);
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  res = c.Post("/v1/completions", R"({"prompt": [1], "max_tokens": 1})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429) << res->body;
  leave = true;
  longer.join();
  for (int i = 0; i < 100 && metric(s, "modelone_requests_running") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  res = c.Post("/v1/completions", R"({"prompt": [1], "max_tokens": 1})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(metric(s, "modelone_requests_cancelled_total"), 1);
  EXPECT_EQ(s.stop(), 0) << s.err();
}

// A client that leaves while its whole (non-streamed) answer is being made: nothing was written to
// it yet, so only the closed socket tells; its request is cancelled and its caches freed.
TEST(CliServeLoad, WholeAnswerLeaverCancelled) {
  Server s("--model tiny --compute fp32", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  {
    auto l = s.client();
    l.set_read_timeout(0, 400000);  // gives up after 0.4 s and closes the connection
    auto res = l.Post("/v1/completions", R"({"prompt": [1], "max_tokens": 60000, "ignore_eos": true})",
                      "application/json");
    EXPECT_FALSE(res);
  }
  for (int i = 0; i < 100 && (metric(s, "modelone_requests_running") != 0 || metric(s, "modelone_cache_bytes") != 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(metric(s, "modelone_requests_running"), 0);
  EXPECT_EQ(metric(s, "modelone_requests_cancelled_total"), 1);
  EXPECT_EQ(metric(s, "modelone_cache_bytes"), 0);
  int status = 0;
  const json ok = post(s, "/v1/completions", {{"prompt", {5, 6}}, {"max_tokens", 2}}, &status);
  EXPECT_EQ(status, 200) << ok.dump();
  EXPECT_EQ(s.stop(), 0) << s.err();
}

std::vector<int32_t> bytes(const std::string& s) {
  std::vector<int32_t> ids;
  for (char c : s) ids.push_back(c == ' ' ? 96 : byte_id(c));
  return ids;
}

// A system and a user turn reach the model as the ids DeepSeek-V4's encoding gives, worked out
// here by hand: BOS, the system text, User, the user text, Assistant, then </think> (chat) or
// <think> (thinking).
TEST(CliServeLoad, ChatTurnsReachTheModelInDeepSeeksFormat) {
  const std::string m = chat_model();
  Server s("--model " + m + " --compute fp32 --served-model-name dsv4", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  for (bool thinking : {false, true}) {
    SCOPED_TRACE(thinking ? "thinking" : "chat");
    std::vector<int32_t> ids = {0};
    for (int32_t id : bytes("be brief")) ids.push_back(id);
    ids.push_back(104);
    for (int32_t id : bytes("hi")) ids.push_back(id);
    ids.push_back(105);
    ids.push_back(thinking ? 106 : 107);
    const json body = {{"model", "dsv4"}, {"max_tokens", 5}, {"ignore_eos", true},
                       {"chat_template_kwargs", {{"thinking", thinking}}},
                       {"messages", {{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", "hi"}}}}};
    int status = 0;
    const json r = post(s, "/v1/chat/completions", body, &status);
    ASSERT_EQ(status, 200) << r.dump();
    EXPECT_EQ(r["object"], "chat.completion");
    EXPECT_EQ(r["usage"]["prompt_tokens"], ids.size());
    EXPECT_EQ(r["choices"][0]["token_ids"].get<std::vector<int32_t>>(), run_alone(m, ids, 5));
    EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(r["choices"][0]["message"].contains("reasoning_content"), thinking);
  }
  int status = 0;
  EXPECT_EQ(post(s, "/tokenize", {{"prompt", "hi"}}, &status)["tokens"], json({0, byte_id('h'), byte_id('i')}));
  EXPECT_EQ(post(s, "/detokenize", {{"tokens", {byte_id('h'), byte_id('i')}}}, &status)["prompt"], "hi");
  const json bad = post(s, "/v1/chat/completions", {{"messages", {{{"role", "assistant"}, {"content", "x"}}}}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("end with a user message"), std::string::npos);
  EXPECT_EQ(s.stop(), 0) << s.err();
}

// logprobs are the model's log-softmax: the first token's against `run --logits-out`'s last
// prompt row, whole and streamed, in the completions and the chat form.
TEST(CliServeLoad, LogprobsAreTheModelsLogSoftmax) {
  const fs::path npy = tmpdir() / "lp_logits.npy";
  const Result ref = run("run --model tiny --compute fp32 --quiet --ids 5,6,7 --logits-out " + npy.string());
  ASSERT_EQ(ref.code, 0) << ref.err;
  std::vector<int64_t> shape;
  const std::vector<float> rows = read_npy_f32(npy.string(), &shape);
  const float* last = rows.data() + (shape[0] - 1) * shape[1];
  double mx = last[0], sum = 0;
  for (int64_t v = 0; v < shape[1]; ++v) mx = std::max(mx, double(last[v]));
  for (int64_t v = 0; v < shape[1]; ++v) sum += std::exp(double(last[v]) - mx);
  const int64_t arg = std::max_element(last, last + shape[1]) - last;
  const double want = double(last[arg]) - mx - std::log(sum);

  Server s("--model tiny --compute fp32", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  int status = 0;
  const json r = post(s, "/v1/completions", {{"prompt", {5, 6, 7}}, {"max_tokens", 2}, {"logprobs", 2}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  const json& lp = r["choices"][0]["logprobs"];
  EXPECT_NEAR(lp["token_logprobs"][0].get<double>(), want, 1e-5);
  EXPECT_EQ(lp["tokens"][0], "token_id:" + std::to_string(arg));
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_NEAR(lp["top_logprobs"][0]["token_id:" + std::to_string(arg)].get<double>(), want, 1e-5);
  EXPECT_EQ(lp["token_logprobs"].size(), 2u);
  // Streamed: each chunk its token's.
  bool done = false;
  const std::string sse = raw_post(s.port(), "/v1/completions",
                                   json({{"prompt", {5, 6, 7}}, {"max_tokens", 2}, {"logprobs", 0}, {"stream", true}}).dump());
  EXPECT_EQ(stream_tokens(sse, &done).size(), 2u);
  const size_t at = sse.find("data: ");
  const json first = json::parse(sse.substr(at + 6, sse.find("\n\n", at) - at - 6));
  EXPECT_NEAR(first["choices"][0]["logprobs"]["token_logprobs"][0].get<double>(), want, 1e-5);
  EXPECT_EQ(post(s, "/v1/completions", {{"prompt", {1}}, {"logprobs", 6}}, &status)["error"]["param"], "logprobs");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(s.stop(), 0) << s.err();
}

TEST(CliServeLoad, ChatLogprobsNameTheTokens) {
  Server s("--model " + chat_model() + " --compute fp32", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  int status = 0;
  const json body = {{"max_tokens", 3}, {"logprobs", true}, {"top_logprobs", 2},
                     {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  const json r = post(s, "/v1/chat/completions", body, &status);
  ASSERT_EQ(status, 200) << r.dump();
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), r["choices"][0]["token_ids"].size());
  for (const json& e : content) {
    EXPECT_LE(e["logprob"].get<double>(), 0.0);
    EXPECT_EQ(e["top_logprobs"].size(), 2u);
    EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(), e["logprob"].get<double>() - 1e-6);  // greedy
    EXPECT_EQ(e["bytes"].size(), e["token"].get<std::string>().size());
  }
  post(s, "/v1/chat/completions", {{"top_logprobs", 2}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}, &status);
  EXPECT_EQ(status, 400);  // top_logprobs without logprobs
  EXPECT_EQ(s.stop(), 0) << s.err();
}

// SIGTERM while a request runs: new ones get 503, the running one finishes whole, every rank
// ends with status 0.
TEST(CliServeLoad, SigtermLetsTheRunningRequestFinish) {
  Server s("--model tiny --compute fp32 --grace 60", 2);
  ASSERT_GT(s.port(), 0) << s.err();
  std::atomic<bool> started{false};
  std::string sse;
  std::thread longer([&] {
    auto c = s.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = R"({"prompt": [4, 5], "max_tokens": 300, "ignore_eos": true, "stream": true})";
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      sse.append(d, n);
      started = true;
      return true;
    };
    c.send(req);
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.term();
  int status = 0;
  for (int i = 0; i < 100 && status != 503; ++i) {  // the signal lands within a step
    post(s, "/v1/completions", {{"prompt", {1}}, {"max_tokens", 1}}, &status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status, 503);
  longer.join();
  bool done = false;
  EXPECT_EQ(stream_tokens(sse, &done).size(), 300u);
  EXPECT_TRUE(done);
  EXPECT_EQ(s.stop(), 0) << s.err();
}

TEST(CliServeLoad, TwoHundredRequestsFromSixtyFourClients) {
  constexpr int kRequests = 200, kClients = 64, kTokens = 8;
  std::vector<std::vector<int32_t>> prompts, want;
  for (int p = 0; p < 8; ++p) {
    std::vector<int32_t> ids;
    for (int t = 0; t <= p * 3; ++t) ids.push_back(int32_t((p * 37 + t * 11 + 3) % 500));
    prompts.push_back(ids);
    want.push_back(run_alone("tiny", ids, kTokens));
  }
  Server s("--model tiny --compute fp32", 3);
  ASSERT_GT(s.port(), 0) << s.err();
  std::atomic<int> next{0}, complete{0}, wrong{0}, gone{0};
  std::mutex m;
  std::string problems;  // what went wrong, request by request
  auto note = [&](int i, const std::string& what) {
    std::lock_guard<std::mutex> lock(m);
    problems += "request " + std::to_string(i) + ": " + what + "\n";
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&] {
      for (int i; (i = next++) < kRequests;) {
        const auto& p = prompts[size_t(i % 8)];
        const bool stream = i % 2 == 0, leave = i % 10 == 3;
        const json body = {{"prompt", p}, {"max_tokens", leave ? 400 : kTokens}, {"ignore_eos", true},
                           {"stream", stream || leave}};
        if (leave) {  // reads the first piece and goes away
          raw_post(s.port(), "/v1/completions", body.dump(), 1);
          ++gone;
          continue;
        }
        std::vector<int32_t> got;
        if (stream) {
          bool done = false;
          got = stream_tokens(raw_post(s.port(), "/v1/completions", body.dump()), &done);
          if (!done) got.clear();
        } else {
          auto res = s.client().Post("/v1/completions", body.dump(), "application/json");
          const json r = res ? json::parse(res->body, nullptr, false) : json();
          if (r.contains("choices")) got = r["choices"][0]["token_ids"].get<std::vector<int32_t>>();
          else note(i, res ? std::to_string(res->status) + " " + res->body : "no answer: " + httplib::to_string(res.error()));
        }
        if (got != want[size_t(i % 8)]) note(i, "tokens " + json(got).dump() + ", alone " + json(want[size_t(i % 8)]).dump());
        ++(got == want[size_t(i % 8)] ? complete : wrong);
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(gone, kRequests / 10);
  EXPECT_EQ(complete, kRequests - kRequests / 10);
  EXPECT_EQ(wrong, 0) << problems;
  // The requests of the clients that left are cancelled at the next steps.
  for (int i = 0; i < 100 && metric(s, "modelone_cache_bytes") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(metric(s, "modelone_cache_bytes"), 0);
  EXPECT_EQ(metric(s, "modelone_requests_running"), 0);
  EXPECT_EQ(metric(s, "modelone_requests_total"), kRequests);
  EXPECT_EQ(s.stop(), 0) << s.err();
}

// `bench serve` against a tiny server: a record per point with every requested token counted
// (ignore_eos: requests x output-len), and a server that is not there or a model it does not
// serve as one error line.
TEST(CliServeLoad, BenchServeCountsEveryToken) {
  Server s("--model tiny --compute fp32", 0);
  ASSERT_GT(s.port(), 0) << s.err();
  const std::string url = "--url http://127.0.0.1:" + std::to_string(s.port());
  const Result r = run("bench serve " + url + " --concurrency 1,2 --num-prompts 4 --input-len 8 "
                       "--output-len 5 --output json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);
  ASSERT_EQ(doc["results"].size(), 2u) << r.out;
  for (int i = 0; i < 2; ++i) {
    const json& p = doc["results"][size_t(i)];
    EXPECT_EQ(p["bench"], "serve");
    EXPECT_EQ(p["model"], "tiny");
    EXPECT_EQ(p["concurrency"], i + 1);
    EXPECT_EQ(p["requests"], 4);
    EXPECT_EQ(p["failed"]["median"], 0);
    EXPECT_EQ(p["output_tokens"]["median"], 4 * 5);
    EXPECT_EQ(p["input_tokens"]["median"], 4 * 8);
    for (const char* k : {"duration_s", "requests_per_second", "output_tokens_per_second",
                          "input_tokens_per_second", "ratio_vs_first", "ttft_p50_ms", "ttft_p90_ms",
                          "ttft_p99_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms"})
      EXPECT_GT(p[k]["median"].get<double>(), 0) << k;
    EXPECT_LE(p["ttft_p50_ms"]["median"].get<double>(), p["e2e_p99_ms"]["median"].get<double>());
  }
  EXPECT_EQ(doc["results"][0]["ratio_vs_first"]["median"], 1.0);
  expect_error("bench serve " + url + " --model gpt-4", "--model 'gpt-4' is not served");
  EXPECT_EQ(s.stop(), 0) << s.err();
  expect_error("bench serve " + url, "no server answers at http://127.0.0.1:");
}

}  // namespace
}  // namespace modelone::test
