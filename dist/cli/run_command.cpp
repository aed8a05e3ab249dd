// `modelone run`: prefill a prompt (in chunks), optionally write its logits, then greedy decode.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "comm/comm.h"
#include "comm/watchdog.h"
#include "dist/cli/commands.h"
#include "dist/cli/validators.h"
#include "model/io/model_source.h"
#include "dist/cli/batch_job.h"
#include "dist/cli/run_setup.h"
#include "dist/generation.h"
#include "dist/cli/prompt_input.h"
#include "dist/binding.h"
#include "dist/engine.h"
#include "dist/malloc_policy.h"
#include "dist/engine_setup.h"
#include "dist/eplb.h"
#include "dist/grid.h"
#include "dist/memory_limit.h"
#include "model/base/check.h"
#include "model/config/model_info.h"
#include "model/io/weight_sizes.h"
#include "model/kernels/linear.h"
#include "model/io/npy.h"
#include "model/text/tokenizer.h"

namespace modelone {

void log_line(bool quiet, const std::string& msg) {
  if (quiet || comm::Comm::world().rank() != 0) return;
  std::fprintf(stderr, "modelone: %s\n", msg.c_str());
  std::fflush(stderr);
}

std::string fmt_seconds(double s) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f s", s);
  return b;
}

namespace {

// Sums the routed (token, expert) counts over the world and the (row, expert) pairs each ep rank
// computed, and writes them from rank 0.
void write_stats(const std::string& path, const RankGrid& grid, const MoeParallel& moe,
                 const std::string& model) {
  const int64_t L = int64_t(moe.expert_tokens.size());
  ExpertStats s;
  s.ep = grid.ep;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<int64_t> e = moe.expert_tokens[size_t(l)];
    grid.world.allreduce(e.data(), int64_t(e.size()), comm::Op::Sum);
    std::vector<int64_t> r(size_t(grid.ep), 0);
    r[size_t(grid.ep_comm.rank())] = moe.computed_pairs[size_t(l)];
    grid.world.allreduce(r.data(), int64_t(r.size()), comm::Op::Sum);
    s.tokens_per_expert.push_back(std::move(e));
    s.tokens_per_rank.push_back(std::move(r));
  }
  comm::agree(grid.world, [&] {
    if (grid.is_root()) write_expert_stats(path, s, model);
  });
}

struct RunTimes {
  double load = 0, prefill = 0, decode = 0;
};

// The prompt through the engine; with --logits-out every position's logits go to disk step by
// step (a long prompt's [T, vocab] never sits in memory at once). Returns the seconds.
double run_prefill(const RunOptions& o, const RunSetup& r, Engine& engine) {
  const RankGrid& grid = r.grid;
  const int64_t T = int64_t(r.prompt.size()), V = r.ms.cfg.vocab_size;
  const bool want_logits = !o.logits_out.empty();
  std::unique_ptr<NpyWriter> npy;
  if (want_logits)
    comm::agree(comm::Comm::world(), [&] {
      if (grid.is_root()) npy = std::make_unique<NpyWriter>(o.logits_out, T, V);
    });
  grid.world.barrier();
  const double t0 = comm::now();
  PrefillOptions popt;
  popt.all_logits = want_logits;
  popt.on_logits = [&](int64_t, int64_t n, const float* rows) {
    if (npy) npy->append(rows, n);
  };
  double last_log = t0;
  popt.on_step = [&](int64_t done, int64_t total) {
    if (done < total && comm::now() - last_log > 5) {  // a line every few seconds on long prompts
      last_log = comm::now();
      log_line(o.m.quiet, "prefill: " + std::to_string(done) + " / " + std::to_string(total) +
                              " tokens, " + fmt_seconds(last_log - t0));
    }
  };
  engine.reserve(T + o.generate);
  // One sequence: the first dp group runs it (over its cp ranks); the other ranks still serve
  // their experts.
  engine.prefill(grid.dp_index == 0 ? r.prompt : std::vector<int32_t>{}, popt);
  const double seconds = comm::now() - t0;
  // A failed write or rename (disk full, a device that refuses) is one error on every rank.
  if (want_logits) comm::agree(comm::Comm::world(), [&] { if (npy) npy->finish(); });
  return seconds;
}

// Decode: every rank of the group holds the last logits, so all pick the same token (a sampled
// draw is keyed by seed and position, never by a rank's state). With a tokenizer, rank 0 streams
// the text as tokens arrive (a character split over two tokens waits for the second, a possible
// stop string until it is decided), on a line of its own before the ids line.
Generation run_decode(const RunOptions& o, const RunSetup& r, Engine& engine) {
  const double t1 = comm::now();
  double last_log = t1;
  const bool stream = r.tokenizer && r.grid.is_root() && !o.json;
  if (stream) {
    std::fputs("text: ", stdout);
    std::fflush(stdout);
  }
  auto show = [&](const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  Generation g = generate_sequence(engine, r.gen, int64_t(r.prompt.size()), r.tokenizer.get(),
                                   stream ? std::function<void(const std::string&)>(show) : nullptr,
                                   [&](int64_t i) {
    if (comm::now() - last_log > 10) {  // a line every 10 s on long generations
      last_log = comm::now();
      log_line(o.m.quiet, "decode: " + std::to_string(i + 1) + " / " + std::to_string(o.generate) +
                              " tokens, " + fmt_seconds(last_log - t1));
    }
  });
  if (stream) show("\n");
  return g;
}

// Collective: the engine's, MoE's, the attention's (per layer kind) and Engram's timers and
// counters, min / mean / max over the world's ranks ({"moe": {"route": {"min": .., ..}, ..}, ..}).
nlohmann::json over_ranks(Engine& engine, const comm::Comm& world) {
  nlohmann::json j;
  auto put = [&](const char* part, const comm::Reduced& red) {
    for (const std::string& f : red.names())
      j[part][f] = {{"min", red[f].min}, {"mean", red[f].mean}, {"max", red[f].max}};
  };
  put("engine", comm::reduce_fields(world, engine.timers()));
  put("moe", comm::reduce_fields(world, engine.moe().timers));
  // The attention's timers by layer kind the model has ("attention.compressed_sparse_attention", ..).
  std::set<AttnKind> kinds(engine.config().attn.begin(), engine.config().attn.end());
  for (AttnKind k : kinds)
    put(("attention." + std::string(attn_kind_name(k))).c_str(),
        comm::reduce_fields(world, engine.attention().timers(k)));
  if (EngramStore* es = engine.engram()) put("engram", comm::reduce_fields(world, es->stats));
  return j;
}

// The --json object: what ran, its times, and the MoE, context-parallel and Engram traffic (rank
// 0's, and in over_ranks the spread of every timer and counter).
nlohmann::json run_json(const RunOptions& o, const RunSetup& r, Engine& engine,
                        const Generation& gen, const RunTimes& t,
                        const std::vector<comm::OpSummary>& traffic, nlohmann::json spread) {
  const int64_t T = int64_t(r.prompt.size());
  const std::vector<int32_t>& generated = gen.tokens;
  const int64_t steps = std::max<int64_t>(0, int64_t(generated.size()) - 1);
  nlohmann::json j;
  j["generated"] = generated;
  j["finish_reason"] = gen.finish_reason;
  if (r.tokenizer) j["text"] = gen.text;
  j["model"] = r.ms.cfg.name;
  j["prompt_tokens"] = T;
  j["world_size"] = r.grid.W;
  j["dp"] = r.grid.dp;
  j["cp"] = r.grid.cp;
  j["ep"] = r.grid.ep;
  j["kv_cache"] = kv_cache_name(r.kv);  // what auto chose
  j["compute"] = compute_name(compute_mode());
  j["malloc"] = malloc_settings();
  j["load_seconds"] = t.load;
  j["prefill_seconds"] = t.prefill;
  j["prefill_tokens_per_second"] = t.prefill > 0 ? double(T) / t.prefill : 0.0;
  j["ttft_seconds"] = t.prefill;  // the first token comes from the prefill's last logits
  j["decode_steps"] = steps;
  j["decode_seconds"] = t.decode;
  j["decode_tokens_per_second"] = steps > 0 ? double(steps) / t.decode : 0.0;
  j["kv_cache_bytes"] = engine.cache_bytes();
  const MoeTimers& mt = engine.moe().timers;
  j["moe_seconds"] = {{"route", mt.route}, {"pack", mt.pack}, {"exchange", mt.exchange},
                      {"experts", mt.experts}, {"combine", mt.combine}};
  j["moe_rows_sent"] = mt.rows_sent;
  j["moe_bytes_sent"] = mt.bytes_sent;
  j["dispatch"] = o.dispatch;
  j["combine"] = o.combine;
  j["overlap"] = o.overlap;
  j["ep_transport"] = engine.moe().uses_shared_memory() ? "shm" : "mpi";
  j["cp_layout"] = o.cp_layout;
  // Context-parallel traffic per operation, min / max over the ranks.
  for (const comm::OpSummary& s : traffic)
    j["cp_traffic"][s.op] = {{"calls", s.calls_max},     {"bytes_min", s.bytes_min},
                             {"bytes_max", s.bytes_max}, {"seconds_min", s.seconds_min},
                             {"seconds_max", s.seconds_max}};
  if (EngramStore* es = engine.engram()) {
    const EngramStats& st = es->stats;
    j["engram"] = {{"fetch", o.engram.fetch},   {"prefetch", o.engram.prefetch == "on"},
                   {"lookups", st.lookups},     {"unique", st.unique},
                   {"remote", st.remote},       {"bytes_received", st.bytes},
                   {"wait_seconds", st.wait_s}, {"table_bytes_rank0", es->local_bytes()},
                   {"seconds", engine.timers().engram},
                   {"cache_rows", o.engram.cache_rows},
                   {"cache_lookups", st.cache_lookups}, {"cache_hits", st.cache_hits}};
  }
  j["over_ranks"] = std::move(spread);
  return j;
}

void print_text(int64_t T, const std::vector<int32_t>& generated, const RunTimes& t) {
  const int64_t steps = std::max<int64_t>(0, int64_t(generated.size()) - 1);
  std::string g;
  for (auto id : generated) g += (g.empty() ? "" : " ") + std::to_string(id);
  std::printf("generated: %s\n", g.c_str());
  std::printf("prefill: %lld tokens in %.3f s (%.1f tokens/s)\n", (long long)T, t.prefill,
              t.prefill > 0 ? double(T) / t.prefill : 0.0);
  if (steps > 0)
    std::printf("decode: %lld steps in %.3f s (%.1f tokens/s)\n", (long long)steps, t.decode,
                double(steps) / t.decode);
}

// --batch: the requests, then one line for each bad input line; status 2 when there was one.
int run_batch_command(const RunOptions& o, const RunSetup& r, Engine& engine) {
  const BatchInput& in = r.batch;
  log_line(o.m.quiet, "batch: " + std::to_string(in.todo.size()) + " request(s) to run, " +
                          std::to_string(in.answered) + " answered already in " + o.out);
  SchedulerOptions sched;
  sched.max_seqs = o.max_seqs;
  sched.step_tokens = o.step_tokens;
  sched.cache_budget = o.cache_budget_gib > 0 ? int64_t(o.cache_budget_gib * double(1ll << 30))
                                              : rank_memory_limit(r.grid.local_size).bytes / 2;
  std::vector<std::string> errors = in.errors;
  run_batch(engine, r.grid, in, o.out, r.out_keep, r.tokenizer.get(), o.m.quiet, sched, &errors);
  if (errors.empty()) return 0;
  if (r.grid.is_root()) {
    for (const std::string& e : errors) std::fprintf(stderr, "modelone: error: %s\n", e.c_str());
    std::fprintf(stderr, "modelone: error: %zu line(s) of %s were not run (above); the others "
                 "were answered\n", errors.size(), o.batch.c_str());
  }
  return 2;
}

}  // namespace

int run_command(const RunOptions& o) {
  const double t_start = comm::now();
  comm::Comm world = comm::Comm::world();
  std::unique_ptr<comm::Watchdog> watchdog;  // for the whole run
  if (o.watchdog_s > 0) {
    comm::agree(world, [&] {
      MO_REQUIRE(comm::thread_multiple(), "--watchdog needs MPI_THREAD_MULTIPLE, which this MPI "
                 "library does not provide");
    });
    watchdog = std::make_unique<comm::Watchdog>(world, o.watchdog_s);
  }
  RunSetup r;
  set_up_run(o, &r);
  std::unique_ptr<Engine> engine = load_engine(o, r, t_start);
  if (!o.batch.empty()) return run_batch_command(o, r, *engine);
  RunTimes t;
  t.load = comm::now() - t_start;
  t.prefill = run_prefill(o, r, *engine);
  const double t1 = comm::now();
  const Generation gen = run_decode(o, r, *engine);
  const std::vector<int32_t>& generated = gen.tokens;
  t.decode = comm::now() - t1;
  if (!o.expert_stats.empty()) write_stats(o.expert_stats, r.grid, engine->moe(), r.ms.cfg.name);
  const std::vector<comm::OpSummary> traffic = engine->counters().reduce(r.grid.world);
  nlohmann::json spread = over_ranks(*engine, r.grid.world);
  if (r.grid.is_root()) {
    if (o.json)
      std::printf("%s\n", run_json(o, r, *engine, gen, t, traffic, std::move(spread)).dump().c_str());
    else print_text(int64_t(r.prompt.size()), generated, t);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace modelone
