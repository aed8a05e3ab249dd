// Answers of accepted completion requests: see completion_handler.h.
#include "dist/serve/completion_handler.h"

#include <cstdio>

#include "comm/clock.h"

namespace modelone {

using nlohmann::json;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.body()), "application/json");
}

void LatencyStats::add(Hist& h, double s) {
  for (size_t i = 0; i < h.le.size(); ++i)
    if (s <= h.le[i]) ++h.count[i];
  h.sum += s;
  ++h.n;
}

void LatencyStats::first_token(double s) {
  std::lock_guard<std::mutex> lock(m_);
  add(ttft_, s);
}

void LatencyStats::between_tokens(double s) {
  std::lock_guard<std::mutex> lock(m_);
  add(itl_, s);
}

std::string LatencyStats::text(const char* name, const char* help, const Hist& h) {
  std::string t = std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
  char buf[128];
  for (size_t i = 0; i < h.le.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %lld\n", name, h.le[i], (long long)h.count[i]);
    t += buf;
  }
  std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n%s_count %lld\n", name,
                (long long)h.n, name, h.sum, name, (long long)h.n);
  return t + buf;
}

std::string LatencyStats::prometheus() const {
  std::lock_guard<std::mutex> lock(m_);
  return text("modelone_time_to_first_token_seconds", "Time from a request's arrival to its first token.", ttft_) +
         text("modelone_inter_token_latency_seconds", "Time between a request's tokens.", itl_);
}

namespace {

// Per request: the token times for the histograms.
struct Clock {
  double submitted, last = -1;
  void tokens(LatencyStats& lat, size_t n) {
    if (n == 0) return;
    const double now = comm::now();
    if (last < 0) lat.first_token(now - submitted);
    else lat.between_tokens(now - last);
    last = now;
  }
};

std::vector<SampleEvent> wait_events(Channel& ch, double timeout_s) {
  std::unique_lock<std::mutex> lock(ch.m);
  ch.cv.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return !ch.events.empty(); });
  std::vector<SampleEvent> out(ch.events.begin(), ch.events.end());
  ch.events.clear();
  return out;
}

}  // namespace

void answer_whole(ServeHub& hub, LatencyStats& lat, const Accepted& a, httplib::Response& res,
                  const std::function<bool()>& client_gone) {
  std::vector<ChoiceResult> choices(size_t(a.req.n));
  std::vector<ReasoningSplit> split(size_t(a.req.n), ReasoningSplit(a.req.thinking));
  Clock clock{a.submitted};
  double looked = comm::now();
  for (;;) {
    const std::vector<SampleEvent> events = wait_events(*a.ch, 0.25);
    if (comm::now() - looked >= 0.25) {  // a peek at the socket: cheap, but not every token
      if (client_gone()) return hub.cancel(a.key);
      looked = comm::now();
    }
    for (const SampleEvent& e : events) {
      if (e.sample < 0) {
        if (!e.error.empty()) return send_error(res, ApiError(503, e.error, "server_error"));
        for (size_t i = 0; i < choices.size(); ++i) split[i].finish(&choices[i].reasoning, &choices[i].content);
        res.set_content(dump(answer_json(a.req, a.head, choices, usage_json(e.prompt_tokens, e.completion_tokens))),
                        "application/json");
        return;
      }
      ChoiceResult& c = choices[size_t(e.sample)];
      clock.tokens(lat, e.tokens.size());
      c.tokens.insert(c.tokens.end(), e.tokens.begin(), e.tokens.end());
      c.logprob.insert(c.logprob.end(), e.logprob.begin(), e.logprob.end());
      c.top.insert(c.top.end(), e.top.begin(), e.top.end());
      split[size_t(e.sample)].push(e.text, &c.reasoning, &c.content);
      if (e.done) c.finish_reason = e.finish_reason;
    }
  }
}

namespace {

struct StreamState {
  std::shared_ptr<Accepted> a;
  std::vector<ReasoningSplit> split;
  std::vector<bool> opened;
  std::vector<int64_t> offset;  // completions' text_offset so far, per choice
  Clock clock;
  bool ended = false;
};

// The SSE text of one sample event (a chat opens each choice with the role).
std::string piece(StreamState& st, const SampleEvent& e) {
  const ApiRequest& r = st.a->req;
  const size_t i = size_t(e.sample);
  std::string reasoning, content;
  st.split[i].push(e.text, &reasoning, &content);
  if (e.done) st.split[i].finish(&reasoning, &content);
  const bool first = !st.opened[i];
  st.opened[i] = true;
  json lp = nullptr;
  if (r.logprobs >= 0) {
    lp = logprobs_json(r.kind, st.a->head.tokenizer, e.tokens, e.logprob, e.top, st.offset[i]);
    for (int32_t id : e.tokens) st.offset[i] += st.a->head.tokenizer ? int64_t(st.a->head.tokenizer->token_bytes(id).size()) : 0;
  }
  return sse(chunk_json(r, st.a->head, e.sample, reasoning, content, e.tokens, e.done ? e.finish_reason : "",
                        first && r.kind == Endpoint::Chat, lp));
}

std::string ending(StreamState& st, const SampleEvent& e) {
  st.ended = true;
  if (!e.error.empty()) return sse(ApiError(503, e.error, "server_error").body()) + "data: [DONE]\n\n";
  std::string out;
  if (st.a->req.include_usage)
    out += sse(usage_chunk_json(st.a->req, st.a->head, usage_json(e.prompt_tokens, e.completion_tokens)));
  return out + "data: [DONE]\n\n";
}

}  // namespace

void answer_stream(ServeHub& hub, LatencyStats& lat, std::shared_ptr<Accepted> a, httplib::Response& res,
                   std::function<void()> ended) {
  auto st = std::make_shared<StreamState>();
  st->a = a;
  st->split.assign(size_t(a->req.n), ReasoningSplit(a->req.thinking));
  st->opened.assign(size_t(a->req.n), false);
  st->offset.assign(size_t(a->req.n), 0);
  st->clock = Clock{a->submitted};
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st, &hub, &lat](size_t, httplib::DataSink& sink) {
        if (!sink.is_writable()) return false;  // gone: the releaser cancels
        std::string out;
        for (const SampleEvent& e : wait_events(*st->a->ch, 0.25)) {
          if (e.sample < 0) {
            out += ending(*st, e);
            break;
          }
          st->clock.tokens(lat, e.tokens.size());
          out += piece(*st, e);
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (st->ended) sink.done();
        return true;
      },
      [st, &hub, ended](bool success) {
        if (!success || !st->ended) hub.cancel(st->a->key);
        ended();
      });
}

}  // namespace modelone
