// Rank 0's meeting point between the HTTP threads and the step loop (dist/serve/serve_loop.h).
// A handler submits a request body and gets a channel its events arrive on; the loop takes the
// new requests and cancellations once per step (waiting while there is nothing to do) and
// delivers each step's events. Only rank 0 has one: no other rank touches the network.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/serve/api_request.h"

namespace modelone {

// What a step did for one sample of a request (sample -1: the request ended, all its samples
// done, or failed with `error`).
struct SampleEvent {
  int64_t key = 0;
  int sample = 0;
  std::vector<int32_t> tokens;  // new this step
  std::string text;             // new text safe to show (with a tokenizer)
  // With logprobs: per new token its log probability and the most likely (id, logprob).
  std::vector<float> logprob;
  std::vector<std::vector<std::pair<int32_t, float>>> top;
  bool done = false;
  std::string finish_reason, error;
  int64_t prompt_tokens = 0, completion_tokens = 0;  // sample -1: the request's usage
};
nlohmann::json event_json(const SampleEvent& e);
SampleEvent event_from_json(const nlohmann::json& j);

// One request's events, filled by the loop and read by its handler.
struct Channel {
  std::mutex m;
  std::condition_variable cv;
  std::deque<SampleEvent> events;
};

struct ServeCounters {
  int64_t requests = 0, rejected = 0, cancelled = 0, prompt_tokens = 0, completion_tokens = 0;
  int64_t waiting = 0, running = 0, cache_bytes = 0;  // the loop's latest view (every rank)
};

class ServeHub {
 public:
  explicit ServeHub(int64_t max_queue) : max_queue_(max_queue) {}
  struct Submitted {
    int64_t key;
    Endpoint kind;
    std::string body;
  };
  // A new request (its body already checked); null when the queue is full or the server stops.
  std::shared_ptr<Channel> submit(Endpoint kind, std::string body, int64_t* key, int* status);
  void cancel(int64_t key);  // the client went away: its caches are freed at the next step
  // The loop: what came in since the last call, waiting up to wait_s while nothing did.
  void take(double wait_s, std::vector<Submitted>* add, std::vector<int64_t>* cancel);
  void deliver(const SampleEvent& e);  // sample -1 ends the request's channel
  void stop_accepting();
  int64_t in_flight();  // requests submitted and not ended
  std::vector<int64_t> keys();  // the requests in flight
  void set_view(const ServeCounters& loop);  // the loop's counts of this step
  ServeCounters counters();

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int64_t max_queue_, next_key_ = 1;
  bool accepting_ = true;
  std::vector<Submitted> new_;
  std::vector<int64_t> cancel_;
  std::map<int64_t, std::shared_ptr<Channel>> live_;
  ServeCounters counters_;
};

}  // namespace modelone
