// Rank 0's hub between the HTTP threads and the step loop: see serve_hub.h.
#include "dist/serve/serve_hub.h"

#include <chrono>

namespace modelone {

using nlohmann::json;

json event_json(const SampleEvent& e) {
  return {{"k", e.key}, {"s", e.sample}, {"t", e.tokens}, {"x", e.text}, {"d", e.done},
          {"f", e.finish_reason}, {"e", e.error}, {"p", e.prompt_tokens}, {"c", e.completion_tokens},
          {"l", e.logprob}, {"o", e.top}};
}

SampleEvent event_from_json(const json& j) {
  SampleEvent e;
  e.key = j["k"];
  e.sample = j["s"];
  e.tokens = j["t"].get<std::vector<int32_t>>();
  e.text = j["x"];
  e.done = j["d"];
  e.finish_reason = j["f"];
  e.error = j["e"];
  e.prompt_tokens = j["p"];
  e.completion_tokens = j["c"];
  e.logprob = j["l"].get<std::vector<float>>();
  e.top = j["o"].get<std::vector<std::vector<std::pair<int32_t, float>>>>();
  return e;
}

std::shared_ptr<Channel> ServeHub::submit(Endpoint kind, std::string body, int64_t* key, int* status) {
  std::lock_guard<std::mutex> lock(m_);
  if (!accepting_ || int64_t(live_.size()) >= max_queue_) {
    ++counters_.rejected;
    *status = accepting_ ? 429 : 503;
    return nullptr;
  }
  *key = next_key_++;
  auto ch = std::make_shared<Channel>();
  live_[*key] = ch;
  new_.push_back({*key, kind, std::move(body)});
  ++counters_.requests;
  cv_.notify_all();
  return ch;
}

void ServeHub::cancel(int64_t key) {
  std::lock_guard<std::mutex> lock(m_);
  if (!live_.erase(key)) return;  // it had ended already
  ++counters_.cancelled;
  cancel_.push_back(key);
  cv_.notify_all();
}

void ServeHub::take(double wait_s, std::vector<Submitted>* add, std::vector<int64_t>* cancel) {
  std::unique_lock<std::mutex> lock(m_);
  if (new_.empty() && cancel_.empty() && wait_s > 0)
    cv_.wait_for(lock, std::chrono::duration<double>(wait_s), [&] { return !new_.empty() || !cancel_.empty(); });
  add->swap(new_);
  cancel->swap(cancel_);
  new_.clear();
  cancel_.clear();
}

void ServeHub::deliver(const SampleEvent& e) {
  std::shared_ptr<Channel> ch;
  {
    std::lock_guard<std::mutex> lock(m_);
    auto it = live_.find(e.key);
    if (it == live_.end()) return;  // cancelled meanwhile
    ch = it->second;
    if (e.sample < 0) {
      live_.erase(it);
      counters_.prompt_tokens += e.prompt_tokens;
      counters_.completion_tokens += e.completion_tokens;
    }
  }
  std::lock_guard<std::mutex> lock(ch->m);
  ch->events.push_back(e);
  ch->cv.notify_all();
}

void ServeHub::stop_accepting() {
  std::lock_guard<std::mutex> lock(m_);
  accepting_ = false;
}

int64_t ServeHub::in_flight() {
  std::lock_guard<std::mutex> lock(m_);
  return int64_t(live_.size());
}

std::vector<int64_t> ServeHub::keys() {
  std::lock_guard<std::mutex> lock(m_);
  std::vector<int64_t> k;
  for (const auto& [key, ch] : live_) k.push_back(key);
  return k;
}

void ServeHub::set_view(const ServeCounters& loop) {
  std::lock_guard<std::mutex> lock(m_);
  counters_.waiting = loop.waiting;
  counters_.running = loop.running;
  counters_.cache_bytes = loop.cache_bytes;
}

ServeCounters ServeHub::counters() {
  std::lock_guard<std::mutex> lock(m_);
  return counters_;
}

}  // namespace modelone
