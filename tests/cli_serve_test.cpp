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
#include "tests/support.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A server in the background: started with a free port, stopped by SIGTERM to rank 0.
class Server {
 public:
  Server(const std::string& args, int np) : dir_(tmpdir() / ("serve_" + std::to_string(count_++))) {
    fs::create_directories(dir_);
    std::string cmd = "timeout 300 ";
    if (np > 0) cmd += std::string(MODELONE_MPIEXEC) + " -n " + std::to_string(np) + " --oversubscribe ";
    cmd += std::string(MODELONE_BIN) + " serve --port 0 --quiet " + args;
    const std::string sh = "(" + cmd + " 2>" + (dir_ / "err").string() + " >" + (dir_ / "out").string() +
                           "; echo $? > " + (dir_ / "rc").string() + ") &";
    std::system(sh.c_str());
    const std::regex re("listening on http://127\\.0\\.0\\.1:(\\d+) \\(model '[^']*', pid (\\d+)\\)");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      const std::string err = slurp(dir_ / "err");
      if (std::regex_search(err, m, re)) {
        port_ = std::stoi(m[1]);
        pid_ = std::stoi(m[2]);
      } else if (fs::exists(dir_ / "rc")) {
        break;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  ~Server() {
    if (pid_ > 0 && !fs::exists(dir_ / "rc")) stop();
  }
  int port() const { return port_; }
  std::string err() const { return slurp(dir_ / "err"); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c;
  }
  // SIGTERM to rank 0; the job's exit status (-1: not ended within 60 s).
  int stop() {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 600; ++i) {
      if (fs::exists(dir_ / "rc") && !slurp(dir_ / "rc").empty()) return std::stoi(slurp(dir_ / "rc"));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

 private:
  static inline int count_ = 0;
  fs::path dir_;
  int port_ = 0, pid_ = 0;
};

json post(const Server& s, const std::string& path, const json& body, int* status = nullptr) {
  auto res = s.client().Post(path.c_str(), body.dump(), "application/json");
  if (!res) return json();
  if (status) *status = res->status;
  return json::parse(res->body, nullptr, false);
}

std::vector<int32_t> run_alone(const std::string& model, const std::vector<int32_t>& ids, int n) {
  std::string list;
  for (int32_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  const Result r = run("run --model " + model + " --compute fp32 --quiet --json --ignore-eos --ids " + list +
                       " --generate " + std::to_string(n));
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out)["generated"].get<std::vector<int32_t>>();
}

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

}  // namespace
}  // namespace modelone::test
