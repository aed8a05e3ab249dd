// The server's step loop: see serve_loop.h.
#include "dist/serve/serve_loop.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "comm/clock.h"
#include "comm/comm.h"
#include "model/base/check.h"

namespace modelone {

using nlohmann::json;

namespace {

// A sample's driver that also records what each step added (its tokens, its text).
class StreamGen : public SequenceGen {
 public:
  StreamGen(const GenerationSpec& spec, int64_t n_prompt, const Tokenizer* tok, const ModelConfig& cfg,
            SampleEvent* ev, int64_t logprobs)
      : SequenceGen(spec, n_prompt, tok, cfg, [ev](const std::string& s) { ev->text += s; }), ev_(ev),
        logprobs_(logprobs) {}
  // Runs on the threads, one sample each (its own event).
  int32_t choose(const std::vector<float>& logits, const std::vector<int32_t>& tokens) override {
    const int32_t tok = SequenceGen::choose(logits, tokens);
    if (logprobs_ >= 0) record_logprobs(logits, tok);
    return tok;
  }
  bool stop(int32_t tok) override {
    ev_->tokens.push_back(tok);
    return SequenceGen::stop(tok);
  }

 private:
  // The model's own distribution (log-softmax of the logits, before penalties and temperature,
  // as vLLM reports by default): the chosen token's and the `logprobs_` likeliest.
  void record_logprobs(const std::vector<float>& logits, int32_t tok) {
    const float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(double(v - mx));
    const float lse = mx + float(std::log(sum));
    ev_->logprob.push_back(logits[size_t(tok)] - lse);
    std::vector<int32_t>& ids = ids_;  // kept: [V] ids per token would allocate each step
    ids.resize(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
    const size_t k = std::min(size_t(logprobs_), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + long(k), ids.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    std::vector<std::pair<int32_t, float>> top;
    for (size_t i = 0; i < k; ++i) top.push_back({ids[i], logits[size_t(ids[i])] - lse});
    ev_->top.push_back(std::move(top));
  }

  SampleEvent* ev_;
  int64_t logprobs_;
  std::vector<int32_t> ids_;
};

// What a sample's event gathered this step, leaving it empty (its key and sample kept) for the next.
SampleEvent take(SampleEvent& e) {
  SampleEvent step = std::move(e);
  e = SampleEvent{};
  e.key = step.key;
  e.sample = step.sample;
  return step;
}

// A request this rank's group runs: each sample's events of the current step.
struct Live {
  std::vector<std::unique_ptr<SampleEvent>> ev;
  int64_t prompt_tokens = 0;
};

// Rank 0's side of a step: what to broadcast. Requests go to the dp group with the fewest
// positions outstanding.
class Dealer {
 public:
  Dealer(ServeHub& hub, int dp) : hub_(hub), load_(size_t(dp), 0) {}
  json decide(double wait_s, bool stop_now) {
    std::vector<ServeHub::Submitted> add;
    std::vector<int64_t> cancel;
    hub_.take(wait_s, &add, &cancel);
    json d = {{"add", json::array()}, {"cancel", cancel}, {"stop", stop_now}};
    for (auto& s : add) {
      const int g = int(std::min_element(load_.begin(), load_.end()) - load_.begin());
      const int64_t weight = int64_t(s.body.size()) / 4 + 256;  // a rough size until it ends
      load_[size_t(g)] += weight;
      owner_[s.key] = {g, weight};
      d["add"].push_back({{"key", s.key}, {"kind", int(s.kind)}, {"body", s.body}, {"group", g}});
    }
    for (int64_t k : cancel) forget(k);
    return d;
  }
  void forget(int64_t key) {
    auto it = owner_.find(key);
    if (it == owner_.end()) return;
    load_[size_t(it->second.first)] -= it->second.second;
    owner_.erase(it);
  }

 private:
  ServeHub& hub_;
  std::vector<int64_t> load_;
  std::map<int64_t, std::pair<int, int64_t>> owner_;
};

// Hands each step's events to the HTTP threads from a thread of its own, in order: waking a
// handler (a futex call and, on a busy core, a switch to it) cost the step loop 15-20 us an event,
// 13% of a 32-stream step of a small model. The loop only queues the step's events.
class Courier {
 public:
  explicit Courier(ServeHub& hub) : hub_(hub), thread_([this] { run(); }) {}
  ~Courier() {  // what was queued is delivered first
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void send(std::vector<SampleEvent> events) {
    if (events.empty()) return;
    {
      std::lock_guard<std::mutex> lock(m_);
      queue_.push_back(std::move(events));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      std::vector<SampleEvent> batch = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      for (const SampleEvent& e : batch) hub_.deliver(e);
      lock.lock();
    }
  }

  ServeHub& hub_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::vector<SampleEvent>> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: it starts once the members above exist
};

class Loop {
 public:
  Loop(Engine& e, const RankGrid& g, const ApiContext& ctx, const ServeLoopOptions& o)
      : engine_(e), grid_(g), ctx_(ctx), sched_(e, o.sched), reports_(g.cp_comm.rank() == 0) {}

  // Applies a broadcast decision; returns whether the server stops.
  bool apply(const json& d) {
    for (int64_t k : d["cancel"]) {
      sched_.cancel(k);
      live_.erase(k);
    }
    for (const json& a : d["add"])
      if (a["group"].get<int>() == grid_.dp_index) add(a["key"], Endpoint(a["kind"].get<int>()), a["body"]);
    return d["stop"].get<bool>();
  }
  // One step when any rank has work; true when any had.
  bool step(ServeCounters* view) {
    int64_t v[4] = {sched_.waiting() + sched_.running() > 0 ? 1 : 0, sched_.waiting(), sched_.running(),
                    reports_ ? sched_.reserved_bytes() : 0};
    grid_.world.allreduce(v, 4, comm::Op::Sum);
    *view = {};
    view->waiting = v[1] / grid_.cp;
    view->running = v[2] / grid_.cp;
    view->cache_bytes = v[3];
    if (v[0] == 0) return false;
    for (FinishedRequest& f : sched_.step()) finish(f);
    return true;
  }
  // This step's events of this rank's requests. World rank 0 keeps its own (`own`: no JSON
  // round trip) and returns nothing; the others return theirs as one line of JSON for rank 0.
  std::string events(std::vector<SampleEvent>* own) {
    std::vector<SampleEvent> out;
    for (auto& [key, live] : live_)
      for (auto& e : live.ev)
        if (!e->tokens.empty() || !e->text.empty()) {
          SampleEvent c = take(*e);
          if (reports_) out.push_back(std::move(c));
        }
    if (reports_) for (SampleEvent& e : ended_) out.push_back(std::move(e));
    ended_.clear();
    for (int64_t k : gone_) live_.erase(k);
    gone_.clear();
    if (own) {
      *own = std::move(out);
      return "";
    }
    json j = json::array();
    for (const SampleEvent& e : out) j.push_back(event_json(e));
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }

 private:
  void add(int64_t key, Endpoint kind, const std::string& body) {
    try {
      const ApiRequest r = parse_api_request(kind, body, ctx_);
      ScheduledRequest s;
      s.key = key;
      s.prompt = r.prompt;
      s.max_tokens = r.gen.max_tokens;
      s.ignore_eos = r.gen.ignore_eos;
      Live& l = live_[key];
      l.prompt_tokens = int64_t(r.prompt.size());
      for (int64_t i = 0; i < r.n; ++i) {
        GenerationSpec spec = r.gen;
        spec.sequence = uint64_t(i);
        l.ev.push_back(std::make_unique<SampleEvent>());
        l.ev.back()->key = key;
        l.ev.back()->sample = int(i);
        s.samples.push_back(std::make_unique<StreamGen>(spec, int64_t(r.prompt.size()), ctx_.tokenizer,
                                                        *ctx_.cfg, l.ev.back().get(), r.logprobs));
      }
      sched_.add(std::move(s));
    } catch (const std::exception& e) {  // rank 0 checked the body: the scheduler refused it
      live_.erase(key);
      SampleEvent ev;
      ev.key = key;
      ev.sample = -1;
      ev.error = e.what();
      ended_.push_back(ev);
    }
  }
  void finish(FinishedRequest& f) {
    Live& l = live_[f.key];
    SampleEvent end;
    end.key = f.key;
    end.sample = -1;
    end.prompt_tokens = l.prompt_tokens;
    for (size_t i = 0; i < f.samples.size(); ++i) {
      SampleEvent& e = *l.ev[i];
      const Generation g = static_cast<StreamGen&>(*f.samples[i]).finish(f.tokens[i]);
      e.done = true;
      e.finish_reason = g.finish_reason;
      end.completion_tokens += int64_t(g.tokens.size());
      SampleEvent last = take(e);  // its last tokens and text with the reason
      if (reports_) ended_.push_back(std::move(last));
    }
    ended_.push_back(end);
    gone_.push_back(f.key);
  }

  Engine& engine_;
  const RankGrid& grid_;
  const ApiContext& ctx_;
  BatchScheduler sched_;
  bool reports_;  // cp rank 0 of the group speaks for it
  std::map<int64_t, Live> live_;
  std::vector<SampleEvent> ended_;
  std::vector<int64_t> gone_;
};

}  // namespace

void serve_loop(Engine& engine, const RankGrid& grid, const ApiContext& ctx,
                const ServeLoopOptions& opt, ServeHub* hub, const std::atomic<bool>& stop) {
  Loop loop(engine, grid, ctx, opt);
  std::unique_ptr<Dealer> dealer;
  std::unique_ptr<Courier> courier;
  if (hub) {
    dealer = std::make_unique<Dealer>(*hub, grid.dp);
    courier = std::make_unique<Courier>(*hub);
  }
  bool busy = false, draining = false;
  double drain_from = 0;
  for (;;) {
    std::string msg;
    if (hub) {
      if (stop.load() && !draining) {
        draining = true;
        drain_from = comm::now();
        hub->stop_accepting();
      }
      const bool end = draining && (hub->in_flight() == 0 || comm::now() - drain_from > opt.grace_s);
      if (end)
        for (int64_t k : hub->keys()) {  // past the grace period: told, not dropped silently
          SampleEvent e;
          e.key = k;
          e.sample = -1;
          e.error = "the server is shutting down";
          hub->deliver(e);
        }
      msg = dealer->decide(busy || end ? 0 : opt.idle_wait_s, end).dump(-1, ' ', false, json::error_handler_t::replace);
    }
    // After an idle step (every rank knows: the step's reduction) the others wait asleep while
    // rank 0 waits for work, instead of spinning in the broadcast (Open MPI polls).
    if (!busy) grid.world.barrier_idle();
    grid.world.bcast_string(&msg, 0);
    if (loop.apply(json::parse(msg))) return;
    ServeCounters view;
    busy = loop.step(&view);
    std::vector<char> all;
    std::vector<SampleEvent> own;
    const std::string mine = loop.events(hub ? &own : nullptr);
    grid.world.gatherv(mine.data(), int64_t(mine.size()), &all, 0);
    if (!hub) continue;
    hub->set_view(view);
    // Each other rank's events as one line of JSON, in rank order, after rank 0's own.
    size_t at = 0;
    while (at < all.size()) {
      const size_t nl = size_t(std::find(all.begin() + long(at), all.end(), '\n') - all.begin());
      for (const json& e : json::parse(all.begin() + long(at), all.begin() + long(nl)))
        own.push_back(event_from_json(e));
      at = nl + 1;
    }
    for (const SampleEvent& ev : own)
      if (ev.sample < 0) dealer->forget(ev.key);
    courier->send(std::move(own));
  }
}

}  // namespace modelone
