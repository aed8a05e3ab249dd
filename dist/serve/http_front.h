// Rank 0's HTTP server (cpp-httplib, Debian's libcpp-httplib-dev, as llama-server uses it: a
// small, well-kept server with chunked responses for server-sent events and a thread pool).
// Routes: GET /health, /v1/models, /metrics; POST /v1/completions, /v1/chat/completions,
// /tokenize, /detokenize. A request is checked here (an error object with a 4xx status, the
// server goes on) and then handed to the step loop through the hub.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "dist/serve/api_request.h"
#include "dist/serve/serve_hub.h"

namespace httplib {
class Server;
}

namespace modelone {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;             // empty: no key asked
  int64_t max_body = 8 << 20;      // bytes of a request body
  int64_t max_seqs = 64;           // n above it is refused
  int64_t max_queue = 256;         // requests in flight (the hub's limit): one thread each
};

class HttpFront {
 public:
  HttpFront(ServeHub& hub, const ApiContext& ctx, HttpOptions opt);
  ~HttpFront();
  // Binds (an Error when the address is taken or wrong) and serves from a thread.
  void start();
  void stop();
  int port() const { return port_; }

 private:
  struct Metrics;
  void routes();
  void guard_routes();       // --api-key, and error objects for httplib's own errors
  void info_routes();        // /health, /v1/models, /metrics
  void completion_routes();  // /v1/completions, /v1/chat/completions
  void token_routes();       // /tokenize, /detokenize

  ServeHub& hub_;
  const ApiContext& ctx_;
  HttpOptions opt_;
  int port_ = 0;
  std::unique_ptr<httplib::Server> svr_;
  std::unique_ptr<Metrics> metrics_;
  std::thread thread_;
  std::atomic<int64_t> answering_{0};  // handlers still writing an answer
};

}  // namespace modelone
