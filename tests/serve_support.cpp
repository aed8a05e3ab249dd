#include "tests/serve_support.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/cli_support.h"
#include "tests/support.h"
#include "tests/tokenizer_json.h"

namespace modelone::test {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
int servers = 0;
}  // namespace

Server::Server(const std::string& args, int np) : dir_(tmpdir() / ("serve_" + std::to_string(servers++))) {
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

Server::~Server() {
  if (pid_ > 0 && slurp(dir_ / "rc").empty()) stop();
}

std::string Server::err() const { return slurp(dir_ / "err"); }

httplib::Client Server::client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(120, 0);
  return c;
}

void Server::term() const { ::kill(pid_, SIGTERM); }

int Server::stop() {
  term();
  for (int i = 0; i < 600; ++i) {
    const std::string rc = slurp(dir_ / "rc");
    if (!rc.empty()) return std::stoi(rc);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

json post(const Server& s, const std::string& path, const json& body, int* status) {
  auto res = s.client().Post(path.c_str(), body.dump(), "application/json");
  if (!res) return json();
  if (status) *status = res->status;
  return json::parse(res->body, nullptr, false);
}

std::vector<int32_t> run_alone(const std::string& model, const std::vector<int32_t>& ids, int n) {
  std::string list;
  for (int32_t id : ids) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  const Result r = run("run --model " + model + " --compute fp32 --quiet --json --ignore-eos --ids " + list +
                       " --generate " + std::to_string(n));
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out)["generated"].get<std::vector<int32_t>>();
}

int byte_id(char c) { return c - '!' + 2; }

std::string chat_model() {
  static const std::string dir = [] {
    json vocab = json::object();
    for (char c = '!'; c <= '~'; ++c) vocab[std::string(1, c)] = byte_id(c);
    vocab["Ġ"] = 96;
    vocab["Ċ"] = 97;
    auto added = [](int id, const std::string& content, bool special) {
      return json{{"id", id}, {"content", content}, {"special", special}, {"normalized", false}};
    };
    const json tok = {
        {"version", "1.0"},
        {"added_tokens", {added(0, "<｜begin▁of▁sentence｜>", true), added(1, "<｜end▁of▁sentence｜>", true),
                          added(104, "<｜User｜>", true), added(105, "<｜Assistant｜>", true),
                          added(106, "<think>", false), added(107, "</think>", false)}},
        {"normalizer", nullptr},
        {"pre_tokenizer", deepseek_pre_tokenizer()},
        {"post_processor",
         {{"type", "TemplateProcessing"},
          {"single", {{{"SpecialToken", {{"id", "<｜begin▁of▁sentence｜>"}, {"type_id", 0}}}},
                      {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
          {"special_tokens", {{"<｜begin▁of▁sentence｜>", {{"id", "<｜begin▁of▁sentence｜>"}, {"ids", {0}},
                                                        {"tokens", {"<｜begin▁of▁sentence｜>"}}}}}}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
    const fs::path d = tmpdir() / "chat_model";
    fs::remove_all(d);
    fs::copy(data_dir("hf_v4_tiny"), d, fs::copy_options::recursive);
    std::ofstream(d / "tokenizer.json") << tok.dump(1);
    return d.string();
  }();
  return dir;
}

double metric(const Server& s, const std::string& name) {
  auto res = s.client().Get("/metrics");
  if (!res) return -1;
  std::stringstream ss(res->body);
  for (std::string l; std::getline(ss, l);)
    if (l.rfind(name + " ", 0) == 0) return std::stod(l.substr(name.size() + 1));
  return -1;
}

}  // namespace modelone::test
