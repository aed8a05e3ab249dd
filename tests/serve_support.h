// A `modelone serve` in the background for the server's tests: started on a free port of
// 127.0.0.1 (read from its "listening" line), stopped by SIGTERM to rank 0.
#pragma once
#include <httplib.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelone::test {

class Server {
 public:
  // `modelone serve --port 0 --quiet ARGS`, under mpiexec -n np when np > 0 (300 s at most).
  Server(const std::string& args, int np);
  ~Server();
  int port() const { return port_; }
  std::string err() const;
  httplib::Client client() const;
  // SIGTERM to rank 0; the job's exit status (-1: not ended within 60 s).
  int stop();
  void term() const;  // SIGTERM to rank 0, not waiting

 private:
  std::filesystem::path dir_;
  int port_ = 0, pid_ = 0;
};

// POST a JSON body; the answer's JSON (null when no answer came), its status in *status.
nlohmann::json post(const Server& s, const std::string& path, const nlohmann::json& body,
                    int* status = nullptr);
// `modelone run`'s greedy tokens (ignoring eos) after ids.
std::vector<int32_t> run_alone(const std::string& model, const std::vector<int32_t>& ids, int n);
// The transformers fixture with a byte-level tokenizer.json that knows DeepSeek-V4's chat tokens
// (written once per test process): 0 BOS (the post-processor's), 1 EOS, 2..95 the bytes
// '!'..'~' (byte_id), 96 the space, 97 the newline, 104 User, 105 Assistant, 106 <think>,
// 107 </think>.
std::string chat_model();
int byte_id(char c);
// A metric's value from GET /metrics (-1: absent).
double metric(const Server& s, const std::string& name);

}  // namespace modelone::test
