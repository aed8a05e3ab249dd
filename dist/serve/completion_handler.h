// POST /v1/completions and /v1/chat/completions once a request is accepted: the whole answer
// when the loop ends it, or its pieces as server-sent events as the steps make them. A client
// that goes away mid-stream cancels its request (its caches are freed at the next step).
#pragma once
#include <httplib.h>

#include <functional>
#include <memory>

#include "dist/serve/api_request.h"
#include "dist/serve/responses.h"
#include "dist/serve/serve_hub.h"

namespace modelone {

// Latency histograms of /metrics: time to first token and between tokens.
struct LatencyStats {
  void first_token(double s);
  void between_tokens(double s);
  std::string prometheus() const;

 private:
  struct Hist {
    std::vector<double> le;
    std::vector<int64_t> count;
    double sum = 0;
    int64_t n = 0;
  };
  static void add(Hist& h, double s);
  static std::string text(const char* name, const char* help, const Hist& h);
  mutable std::mutex m_;
  // Buckets from 1 ms (TTFT) and 0.25 ms (ITL): a small model's tokens come in well under the
  // 50 and 5 ms the first buckets used to start at, where every request fell into one bucket.
  Hist ttft_{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
             std::vector<int64_t>(15, 0)};
  Hist itl_{{0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
            std::vector<int64_t>(13, 0)};
};

struct Accepted {
  ApiRequest req;
  AnswerHead head;
  int64_t key = 0;
  std::shared_ptr<Channel> ch;
  double submitted = 0;
};

// client_gone() is asked between the engine's events (at least every 0.25 s): a client that left
// has its request cancelled (its caches freed at the next step) and gets no answer.
void answer_whole(ServeHub& hub, LatencyStats& lat, const Accepted& a, httplib::Response& res,
                  const std::function<bool()>& client_gone);
// ended() runs once the stream's last byte is written or the client has gone.
void answer_stream(ServeHub& hub, LatencyStats& lat, std::shared_ptr<Accepted> a, httplib::Response& res,
                   std::function<void()> ended);
void send_error(httplib::Response& res, const ApiError& e);

}  // namespace modelone
