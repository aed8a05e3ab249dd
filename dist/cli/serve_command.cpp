// `modelone serve`: an OpenAI-compatible server over the MPI ranks (dist/serve/). Set up as `run`
// sets up a batch job (cp 1 by default: each rank serves its own sequences), then rank 0 serves
// HTTP while every rank runs the step loop. SIGTERM or SIGINT on rank 0 stops it gracefully.
#include <csignal>
#include <unistd.h>

#include <atomic>

#include "comm/clock.h"
#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/cli/run_setup.h"
#include "dist/cli/validators.h"
#include "dist/memory_limit.h"
#include "dist/serve/http_front.h"
#include "dist/serve/serve_loop.h"
#include "model/base/check.h"

namespace modelone {

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

// The layout, compute and batch flags `serve` shares with `run`.
void add_engine_flags(CLI::App* s, RunOptions* o) {
  add_model_options(s, &o->m);
  s->get_option("--threads")->description("Compute threads per rank (default: OMP_NUM_THREADS, "
                                          "or all cores, one fewer on world rank 0, which also "
                                          "runs the HTTP threads)");
  add_sampling_options(s, &o->sample);
  s->add_flag("--ignore-eos", o->ignore_eos, "Default of requests' ignore_eos");
  s->add_option("--generate", o->generate, "Default max_tokens of requests that give none "
                "(default: 256, or what the context leaves)")->check(non_negative());
  add_kv_cache_option(s, &o->kv_cache, "KV cache storage");
  add_compute_option(s, &o->compute);
  s->add_option("--cp", o->cp, "Context-parallel ranks per sequence (default 1: each rank serves "
                "its own requests)")->check(CLI::Range(1, 1 << 20));
  add_choice(s, &o->cp_layout, layout_choices(), "How a prefill step's positions split over the cp ranks");
  s->add_option("--ep", o->ep, "Expert-parallel group size (default: world size)")->check(CLI::Range(1, 1 << 20));
  add_choice(s, &o->repack, repack_choices(), "bf16 compute: BF16 weights repacked into the panel kernel's layout");
  add_choice(s, &o->dispatch, dispatch_choices(), "Expert dispatch payload");
  add_choice(s, &o->combine, combine_choices(), "Expert combine payload");
  add_choice(s, &o->transport, transport_choices(), "Expert exchange: auto, mpi or shm");
  add_engram_options(s, &o->engram);
  s->add_option("--max-seqs", o->max_seqs, "Sequences a rank decodes at once")->check(positive());
  s->add_option("--step-tokens", o->step_tokens, "Tokens per step: running samples' next tokens, "
                "then prompt chunks")->check(positive());
  s->add_option("--cache-budget", o->cache_budget_gib, "GiB of caches a rank holds (default: half "
                "of what the node gives a rank)")->check(positive());
  s->add_option("--memory-budget", o->memory_budget_gib, "GiB one rank may use")->check(positive());
}

}  // namespace

void add_serve_command(CLI::App* app, ServeOptions* o) {
  CLI::App* s = app->add_subcommand("serve", "OpenAI-compatible HTTP server (rank 0 listens; every "
                                    "rank runs the batches)");
  add_engine_flags(s, &o->run);
  s->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  s->add_option("--port", o->port, "Port to listen on (0: any free one, printed)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  s->add_option("--api-key", o->api_key, "Requests must carry 'Authorization: Bearer KEY'");
  s->add_option("--served-model-name", o->name, "The model's name in the API (default: --model)");
  s->add_option("--max-queue", o->max_queue, "Requests in flight; more get 429")->check(positive())
      ->capture_default_str();
  s->add_option("--max-body", o->max_body_mib, "MiB of a request body; more get 413")->check(positive())
      ->capture_default_str();
  s->add_option("--grace", o->grace_s, "Seconds running requests get to finish after SIGTERM")
      ->check(seconds_in(0, 86400))->capture_default_str();
}

int serve_command(const ServeOptions& so) {
  const double t_start = comm::now();
  RunOptions o = so.run;
  o.serving = true;
  RunSetup r;
  set_up_run(o, &r);
  std::unique_ptr<Engine> engine = load_engine(o, r, t_start);
  comm::cpu_timing() = false;  // the HTTP threads would make every CPU-time read walk them all
  ServeLoopOptions lo;
  lo.sched.max_seqs = o.max_seqs;
  lo.sched.step_tokens = o.step_tokens;
  lo.sched.cache_budget = o.cache_budget_gib > 0 ? int64_t(o.cache_budget_gib * double(1ll << 30))
                                                 : rank_memory_limit(r.grid.local_size).bytes / 2;
  lo.grace_s = so.grace_s;
  const ModelConfig& cfg = r.ms.cfg;
  ApiContext ctx;
  ctx.cfg = &cfg;
  ctx.tokenizer = r.tokenizer.get();
  ctx.model_name = so.name.empty() ? o.m.model : so.name;
  ctx.defaults = r.gen;
  ctx.max_positions = cfg.max_position_embeddings;
  const DType kv = r.kv;
  const int cp = r.grid.cp;
  ctx.bytes_needed = [&cfg, kv, cp](int64_t prompt, int64_t max_tokens, int64_t n) {
    return n * sequence_bytes(cfg, kv, prompt + max_tokens, cp);
  };
  ctx.cache_budget = lo.sched.cache_budget;
  HttpOptions ho{so.host, so.port, so.api_key, so.max_body_mib << 20, o.max_seqs, so.max_queue};
  std::unique_ptr<ServeHub> hub;
  std::unique_ptr<HttpFront> front;
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  comm::agree(r.grid.world, [&] {
    if (!r.grid.is_root()) return;
    hub = std::make_unique<ServeHub>(so.max_queue);
    front = std::make_unique<HttpFront>(*hub, ctx, ho);
    front->start();
  });
  if (r.grid.is_root())  // always printed: scripts wait for this line
    std::fprintf(stderr, "modelone: serve: listening on http://%s:%d (model '%s', pid %d)\n",
                 so.host.c_str(), front->port(), ctx.model_name.c_str(), int(getpid()));
  serve_loop(*engine, r.grid, ctx, lo, hub.get(), g_stop);
  if (front) front->stop();
  log_line(o.m.quiet, "serve: stopped");
  return 0;
}

}  // namespace modelone
