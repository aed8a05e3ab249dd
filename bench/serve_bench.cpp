// `bench serve`: load against a running OpenAI-compatible server, as vLLM's benchmark_serving
// drives one. Per point of the sweep, a set of random-id prompts goes out either closed loop (C
// clients, each sending its next request when the last one ends) or open loop (Poisson arrivals
// at R requests/s, each request on its own thread, optionally at most --max-concurrency in
// flight); every request streams, so its first token, the gaps between tokens and its end are
// timed at the client (serve_client.h). One line per point: throughput, TTFT / ITL / end-to-end
// percentiles, and output tokens/s against the sweep's first point measured in the same run.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <semaphore>
#include <thread>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "bench/serve_client.h"
#include "comm/clock.h"
#include "comm/comm.h"
#include "model/base/check.h"

namespace modelone::bench {

namespace {

struct Request {
  std::vector<int32_t> prompt;
  int64_t output_len = 0;
};

// One point's answers (in the order the requests were made) and its wall time, first send to
// last answer.
struct PointResult {
  std::vector<RequestOutcome> outcomes;
  double duration = 0;
};

// Where the load goes and what it sends. Prompts are ids in [10, vocab): low ids are where
// tokenizers keep BOS / EOS and other specials, and --vocab's default 256 fits the tiny fixtures.
struct Workload {
  const ServeBenchOptions& o;
  ServeTarget target;
  std::string model;
  std::mt19937_64 rng;

  int64_t length(int64_t len, double spread) {
    const int64_t lo = std::max<int64_t>(1, std::llround(double(len) * (1 - spread)));
    const int64_t hi = std::max<int64_t>(lo, std::llround(double(len) * (1 + spread)));
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  }
  std::vector<Request> requests(int64_t n) {
    std::uniform_int_distribution<int32_t> id(10, int32_t(o.vocab - 1));
    std::vector<Request> out(static_cast<size_t>(n));
    for (Request& r : out) {
      r.prompt.resize(size_t(length(o.input_len, o.input_len_spread)));
      for (int32_t& t : r.prompt) t = id(rng);
      r.output_len = length(o.output_len, o.output_len_spread);
    }
    return out;
  }
  RequestOutcome send(const Request& r) const {
    return stream_completion(target, model, r.prompt, r.output_len);
  }
};

// `clients` threads, each taking the next request when its last one has ended.
PointResult closed_loop(const Workload& w, const std::vector<Request>& reqs, int64_t clients) {
  PointResult p;
  p.outcomes.resize(reqs.size());
  std::atomic<size_t> next{0};
  const double t0 = comm::now();
  std::vector<std::thread> threads;
  for (int64_t c = 0; c < std::min<int64_t>(clients, int64_t(reqs.size())); ++c)
    threads.emplace_back([&] {
      for (size_t i; (i = next++) < reqs.size();) p.outcomes[i] = w.send(reqs[i]);
    });
  for (std::thread& t : threads) t.join();
  p.duration = comm::now() - t0;
  return p;
}

// Poisson arrivals at `rate` (exponential gaps, drawn from the workload's seed): each request
// starts on its own thread at its time whether or not earlier ones have ended, so a slow server
// meets a growing queue as it would in production. With cap > 0 a request waits for one of cap
// slots before it is sent; its times start at the send, as vLLM's --max-concurrency counts them.
PointResult open_loop(Workload& w, const std::vector<Request>& reqs, double rate, int64_t cap) {
  PointResult p;
  p.outcomes.resize(reqs.size());
  std::counting_semaphore<> slots(cap > 0 ? std::ptrdiff_t(cap) : std::ptrdiff_t(reqs.size()));
  std::exponential_distribution<double> gap(rate);
  std::vector<std::thread> threads;
  const double t0 = comm::now();
  double at = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const double wait = t0 + at - comm::now();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    threads.emplace_back([&, i] {
      slots.acquire();
      p.outcomes[i] = w.send(reqs[i]);
      slots.release();
    });
    at += gap(w.rng);
  }
  for (std::thread& t : threads) t.join();
  p.duration = comm::now() - t0;
  return p;
}

// Linear between the closest ranks (numpy's default), as vLLM's percentiles are; 0 when empty.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double x = p / 100 * double(v.size() - 1);
  const size_t i = size_t(x);
  return i + 1 < v.size() ? v[i] + (x - double(i)) * (v[i + 1] - v[i]) : v[i];
}

// A point of the sweep: closed loop at `concurrency` clients, or open loop at `rate` (> 0).
struct Point {
  int64_t concurrency = 0;
  double rate = 0;
  std::string name() const {
    return rate > 0 ? str_cat("request rate ", rate, "/s") : str_cat("concurrency ", concurrency);
  }
};

// The successful requests' numbers; a failed request counts in `failed` only (its times would
// be the failure's, not the server's service). Every request failing stops the bench: the
// numbers would be of nothing.
struct Totals {
  int64_t failed = 0, in = 0, out = 0;
  std::vector<double> ttft, itl, e2e;
};
Totals totals(const Point& pt, const PointResult& r) {
  Totals t;
  const std::string* first_error = nullptr;
  for (const RequestOutcome& x : r.outcomes) {
    if (!x.ok) {
      if (t.failed++ == 0) first_error = &x.error;
      continue;
    }
    t.in += x.prompt_tokens;
    t.out += x.output_tokens;
    t.ttft.push_back(x.ttft * 1e3);
    t.e2e.push_back(x.e2e * 1e3);
    for (double g : x.itl) t.itl.push_back(g * 1e3);
  }
  MO_REQUIRE(t.failed < int64_t(r.outcomes.size()), "bench serve: at ", pt.name(), " all ",
             r.outcomes.size(), " requests failed; the first: ", *first_error);
  if (first_error)
    std::fprintf(stderr, "bench serve: at %s %lld of %zu requests failed; the first: %s\n",
                 pt.name().c_str(), (long long)t.failed, r.outcomes.size(), first_error->c_str());
  return t;
}

void print_point(const Workload& w, const Point& pt, const PointResult& r, double* first_tps) {
  const Totals t = totals(pt, r);
  const double d = r.duration, tps = double(t.out) / d;
  if (*first_tps == 0) *first_tps = tps;
  Line l("serve");
  l.add("model", w.model).add("mode", std::string(pt.rate > 0 ? "rate" : "concurrency"));
  if (pt.rate > 0) l.add("request_rate", str_cat(pt.rate)).add("max_concurrency", w.o.max_concurrency);
  else l.add("concurrency", pt.concurrency);
  l.add("input_len", w.o.input_len)
      .add("output_len", w.o.output_len)
      .add("requests", int64_t(r.outcomes.size()))
      .add("failed", double(t.failed))
      .add("duration_s", d)
      .add("requests_per_second", double(r.outcomes.size() - size_t(t.failed)) / d)
      .add("input_tokens", double(t.in))
      .add("output_tokens", double(t.out))
      .add("input_tokens_per_second", double(t.in) / d)
      .add("output_tokens_per_second", tps)
      .add("ratio_vs_first", tps / *first_tps, 3);
  for (const auto& [name, v] : {std::pair{"ttft", &t.ttft}, std::pair{"itl", &t.itl}})
    for (int p : {50, 90, 99}) l.add(str_cat(name, "_p", p, "_ms"), percentile(*v, p));
  l.add("e2e_p50_ms", percentile(t.e2e, 50)).add("e2e_p99_ms", percentile(t.e2e, 99));
  l.print();
}

// The server and model the load goes to, checked before the first request: the model served
// (--model or the first listed), and prompt plus output fitting its context.
Workload connect(const ServeBenchOptions& o) {
  MO_REQUIRE(comm::Comm::world().size() == 1, "bench serve: run it as one process (its clients "
             "are threads), not under mpiexec -n ", comm::Comm::world().size());
  MO_REQUIRE(o.vocab > 10, "bench serve: --vocab must be above 10 (prompt ids are drawn from "
             "[10, vocab)), got ", o.vocab);
  Workload w{o, parse_serve_url(o.url, o.api_key), o.model, std::mt19937_64(o.seed)};
  const std::vector<ServedModel> models = list_models(w.target);
  auto m = models.begin();
  if (w.model.empty()) w.model = m->id;
  while (m != models.end() && m->id != w.model) ++m;
  MO_REQUIRE(m != models.end(), "bench serve: --model '", printable(w.model), "' is not served at ",
             w.target.url, " (it serves '", models.front().id, "')");
  const int64_t longest = std::llround(double(o.input_len) * (1 + o.input_len_spread)) +
                          std::llround(double(o.output_len) * (1 + o.output_len_spread));
  MO_REQUIRE(m->max_model_len == 0 || longest <= m->max_model_len, "bench serve: prompt + output "
             "reach ", longest, " positions but '", w.model, "' holds ", m->max_model_len);
  return w;
}

// Requests the sweep does not time (first touches of the server's buffers and the client's
// connections); a failure here is the server refusing what the bench sends, so it ends the run.
void warm_up(Workload& w) {
  for (const Request& r : w.requests(w.o.warmup)) {
    const RequestOutcome x = w.send(r);
    MO_REQUIRE(x.ok, "bench serve: the warm-up request to ", w.target.url, " failed: ", x.error);
  }
}

std::vector<Point> sweep(const ServeBenchOptions& o) {
  std::vector<Point> pts;
  for (double r : o.request_rate) pts.push_back({o.max_concurrency, r});
  if (pts.empty())
    for (int64_t c : o.concurrency) pts.push_back({c, 0});
  return pts;
}

int64_t num_prompts(const ServeBenchOptions& o, const Point& pt) {
  if (o.num_prompts > 0) return o.num_prompts;
  if (pt.rate > 0) return std::max<int64_t>(16, std::llround(std::ceil(pt.rate * 10)));  // 10 s
  return std::max<int64_t>(16, 4 * pt.concurrency);
}

}  // namespace

int serve_bench(const ServeBenchOptions& o) {
  // agree(): a failed check leaves as "modelone: error: ..." with exit 2, as the flags' do.
  comm::agree(comm::Comm::world(), [&] {
    Workload w = connect(o);
    warm_up(w);
    double first_tps = 0;
    for (const Point& pt : sweep(o)) {
      const std::vector<Request> reqs = w.requests(num_prompts(o, pt));
      const PointResult r = pt.rate > 0 ? open_loop(w, reqs, pt.rate, pt.concurrency)
                                        : closed_loop(w, reqs, pt.concurrency);
      print_point(w, pt, r, &first_tps);
    }
  });
  return 0;
}

}  // namespace modelone::bench
