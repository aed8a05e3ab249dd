#include "dist/cli/bench_command.h"

#include "dist/cli/commands.h"
#include "dist/cli/validators.h"
#include "dist/grid.h"

namespace modelone::bench {

namespace {
// Ranges of the benchmarks' numbers: a zero count has no median, and a negative one no meaning.
const CLI::Validator kIters = count_in(1, 1000000);
const CLI::Validator kContext = count_in(1, int64_t(1) << 20);  // V4's longest context
const CLI::Validator kRows = count_in(1, int64_t(1) << 24);     // rows of one product or exchange

// --threads: 0 (the default count) up to the cap run and the environment meet.
CLI::Validator threads_per_rank() { return count_in(0, max_threads_per_rank()); }

// The report's flags, on each subcommand so they read where the benchmark's own flags do.
void add_report_options(CLI::App* sub, ReportOptions* r) {
  sub->add_option("--repetitions", r->repetitions, "Run the whole benchmark N times and report "
                  "each measurement's median and mean +- sd over the runs")
      ->check(CLI::Range(1, 1000000));
  CLI::Option* out = sub->add_option("--output", r->output, "text (default: one line per case), "
                                     "md (a table per result kind), csv, json (one document with "
                                     "the machine and every result), jsonl (one object per line)")
      ->check(CLI::IsMember({"text", "md", "csv", "json", "jsonl"}));
  sub->add_flag("--json", r->json, "One JSON object per line (the same as --output jsonl)")
      ->excludes(out);
}
}  // namespace

namespace {

void add_gemm_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* g = b->add_subcommand("gemm", "Weight products of the fp32 and bf16 compute paths vs "
                                           "OpenBLAS sgemm on fp32 weights");
  g->add_option("--weights", o->gemm.weights, "Stored weights: bf16, bf16p (bf16 repacked into "
                "64-row panels, as the engine holds routed experts), fp8 (e4m3, 128 x 128 scales) or fp4 "
                "(e2m1, a scale per 32)")->check(CLI::IsMember({"bf16", "bf16p", "fp8", "fp4"}));
  g->add_option("--tokens", o->gemm.tokens, "Rows of x (batch sizes)")->delimiter(',')->check(kRows);
  g->add_option("--shape", o->gemm.shape, "Only this V4-Flash projection (e.g. wq_b)");
  g->add_option("--threads", o->gemm.threads, "Threads (default: all cores)")->check(threads_per_rank());
  add_report_options(g, &o->report);
}

void add_calibrate_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* c = b->add_subcommand("calibrate", "Measure this machine's per-operation costs "
                                               "(products, attention, collectives) for `modelone plan`");
  CalibrateBenchOptions& k = o->calibrate;
  c->add_option("--out", k.out, "Machine profile to write (default machine.json)");
  c->add_option("--threads", k.threads, "Thread counts to calibrate, each on every cpu the "
                "job holds on rank 0's node (default: 1 .. those cpus)")->delimiter(',')->check(count_in(1, max_threads_per_rank()));
  c->add_option("--dtypes", k.dtypes, "Stored weight dtypes to time (bf16 is needed)")
      ->delimiter(',')->check(CLI::IsMember({"bf16", "fp8", "fp4"}));
  add_choice(c, &k.compute, compute_choices(), "Compute path of the products");
  c->add_flag("--quick", k.quick, "Fewer and smaller points (about a tenth of the time; tests)");
  c->add_option("--passes", k.passes, "Time the kernels in N whole passes and keep each point's "
                "median, so a burst of load on a shared machine moves one pass, not the profile "
                "(default 3; 1 with --quick)")->check(CLI::Range(1, 9));
  c->add_option("--links-as", k.links_as, "inter: time only the world's collectives and add them "
                "to the profile --out names as links between nodes (a run across nodes, or one node "
                "under --mca btl self,tcp); cores: time only the node's collectives in a world no "
                "larger than its cores and add them as the links of layouts whose ranks fit the "
                "cores (a profile calibrated with more ranks than cores measured its links with "
                "MPI yielding the cores, several times slower for small messages)")
      ->check(CLI::IsMember({"inter", "cores"}));
  add_report_options(c, &o->report);
}

void add_attention_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* a = b->add_subcommand("attention", "Decode cost per layer kind vs context, vs dense");
  a->add_option("--model", o->attention.model, "Preset or config for the layer shape");
  a->add_option("--set", o->attention.sets, "Config overrides key=value");
  a->add_option("--contexts", o->attention.contexts, "Context lengths")->delimiter(',')->check(kContext);
  a->add_option("--threads", o->attention.threads, "Threads (default: all cores)")->check(threads_per_rank());
  add_report_options(a, &o->report);
}

void add_engine_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* e = b->add_subcommand("engine", "Prefill tokens/s and decode time per token vs context");
  e->add_option("--model", o->engine.model, "Preset, .pbtxt or checkpoint directory");
  e->add_option("--set", o->engine.sets, "Config overrides key=value");
  e->add_option("--contexts", o->engine.contexts, "Prompt lengths")->delimiter(',')->check(kContext);
  e->add_option("--decode-steps", o->engine.decode_steps, "Decode steps timed per context")->check(kIters);
  e->add_option("--prefill-chunk", o->engine.prefill_chunk, "Prompt tokens per forward step")->check(kContext);
  add_kv_cache_option(e, &o->engine.kv_cache, "KV cache storage");
  add_choice(e, &o->engine.repack, repack_choices(), "bf16 compute: BF16 weights repacked at "
             "load into the panel kernel's layout: all, experts or none (the fp32 pass reads them too)");
  e->add_option("--seed", o->engine.seed, "Prompt seed");
  add_choice(e, &o->engine.compute, compute_choices(), "Compute mode timed against fp32 in the "
             "same run: auto (bf16 where the CPU has it), bf16 or fp32");
  e->add_option("--threads", o->engine.threads, "Threads per rank")->check(threads_per_rank());
  add_report_options(e, &o->report);
}

void add_ep_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* x = b->add_subcommand("ep", "Expert dispatch + combine vs a plain MPI_Alltoallv of the same bytes");
  x->add_option("--model", o->ep.model, "Preset or config for hidden size, experts, top-k");
  x->add_option("--set", o->ep.sets, "Config overrides key=value");
  x->add_option("--tokens", o->ep.tokens, "Tokens per rank")->delimiter(',')->check(kRows);
  add_choice(x, &o->ep.dispatch, dispatch_choices(), "fp32, bf16 or fp8");
  add_choice(x, &o->ep.combine, combine_choices(), "fp32 or bf16");
  add_choice(x, &o->ep.transport, transport_choices(), "auto (shm on one node), mpi or shm");
  x->add_option("--iters", o->ep.iters, "Timed iterations per case (median reported)")->check(kIters);
  x->add_option("--seed", o->ep.seed, "Routing seed");
  x->add_option("--threads", o->ep.threads, "Threads per rank")->check(threads_per_rank());
  add_report_options(x, &o->report);
}

void add_moe_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* m = b->add_subcommand("moe", "One MoE layer for a fixed global batch: route / pack / "
                                         "exchange / experts / combine");
  m->add_option("--model", o->moe.model, "Preset or config (layer shape)");
  m->add_option("--set", o->moe.sets, "Config overrides key=value");
  m->add_option("--global-tokens", o->moe.global_tokens, "Tokens over all ranks")->check(kRows);
  add_choice(m, &o->moe.dispatch, dispatch_choices(), "fp32, bf16 or fp8");
  add_choice(m, &o->moe.combine, combine_choices(), "fp32 or bf16");
  m->add_flag("--overlap", o->moe.overlap, "Two micro-batches (MPI transport)");
  add_choice(m, &o->moe.compute, compute_choices(), "The experts' arithmetic and the baseline "
             "product's: auto (bf16 where the CPU has it), bf16 or fp32");
  m->add_option("--experts", o->moe.experts, "bf16: grouped (every expert's rows in one product "
                "over weights repacked at load, the default), unpacked (the same product packing "
                "each weight panel per call) or each (one product per expert)")
      ->check(CLI::IsMember({"grouped", "unpacked", "each"}));
  add_choice(m, &o->moe.transport, transport_choices(), "auto (shm on one node), mpi or shm");
  m->add_option("--iters", o->moe.iters, "Timed iterations (median reported)")->check(kIters);
  m->add_option("--threads", o->moe.threads, "Threads per rank")->check(threads_per_rank());
  add_report_options(m, &o->report);
}

void add_context_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* c = b->add_subcommand("context", "One long sequence over the cp group (the mpirun "
                                            "world) vs one rank: prefill and decode");
  c->add_option("--model", o->context.model, "Preset or config (V4-Flash attention shapes)");
  c->add_option("--set", o->context.sets, "Config overrides after the defaults (the cut of "
                                          "--layers, n_routed_experts=8)");
  c->add_option("--layers", o->context.layers, "The layers kept (default: V4-Flash's first CSA "
                "and HCA layer; V4.1's 0-3, 8, 20, 21, 24)")->delimiter(',');
  c->add_option("--prefill", o->context.prefill, "Prompt lengths to prefill (empty: none)")
      ->delimiter(',')->check(kContext);
  c->add_option("--decode", o->context.decode, "Contexts to decode at, filled synthetically")
      ->delimiter(',')->check(kContext);
  c->add_option("--layouts", o->context.layouts, "Prefill layouts: zigzag, contiguous")
      ->delimiter(',')->check(CLI::IsMember(layout_choices().texts()));
  c->add_option("--phase", o->context.phase, "prefill, decode or both")
      ->check(CLI::IsMember({"prefill", "decode", "both"}));
  c->add_option("--decode-steps", o->context.decode_steps, "Timed decode steps per context")->check(kIters);
  c->add_option("--prefill-chunk", o->context.prefill_chunk, "Prompt tokens per rank per step")->check(kContext);
  add_kv_cache_option(c, &o->context.kv_cache, "KV cache storage");
  add_choice(c, &o->context.compute, compute_choices(), "auto (bf16 where the CPU has it), bf16 "
             "or fp32");
  c->add_option("--threads", o->context.threads, "Threads per rank (default 1)")->check(threads_per_rank());
  c->add_option("--seed", o->context.seed, "Prompt and cache seed");
  add_report_options(c, &o->report);
}

void add_engram_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* en = b->add_subcommand("engram", "Engram's sharded tables: remote fetch paths vs a "
                                            "local gather and the all-reduce design; step time "
                                            "with Engram on, prefetch off, and off");
  en->add_option("--model", o->engram.model, "Preset or config with Engram layers");
  en->add_option("--set", o->engram.sets, "Config overrides (tables default to ~24 x 100K rows)");
  en->add_option("--tokens", o->engram.tokens, "Fetch: tokens per step over the world")->delimiter(',')
      ->check(kRows);
  en->add_option("--step-tokens", o->engram.step_tokens, "Step: prompt lengths (decode runs after)")
      ->delimiter(',')->check(kContext);
  en->add_option("--part", o->engram.part, "fetch, step or both")
      ->check(CLI::IsMember({"fetch", "step", "both"}));
  en->add_option("--decode-steps", o->engram.decode_steps, "Timed decode steps")->check(kIters);
  en->add_option("--iters", o->engram.iters, "Timed runs per case (median)")->check(kIters);
  en->add_option("--threads", o->engram.threads, "Threads per rank (default 1)")->check(threads_per_rank());
  en->add_option("--seed", o->engram.seed, "Text seed");
  add_report_options(en, &o->report);
}

void add_batch_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* x = b->add_subcommand("batch", "Decode throughput vs batch (vs batch 1), and decode "
                                  "steps with prompt chunks mixed in (p50 / p99 vs decode only)");
  x->add_option("--model", o->batch.model, "Preset, .pbtxt or checkpoint directory");
  x->add_option("--set", o->batch.sets, "Config overrides key=value, after the default cut "
                "num_hidden_layers=4 n_routed_experts=16");
  x->add_option("--batches", o->batch.batches, "Sequences over the world, dealt to the ranks "
                "(cp = 1, ep = world)")->delimiter(',')->check(CLI::Range(int64_t(1), int64_t(4096)));
  x->add_option("--context", o->batch.context, "Positions each sequence holds before the timed steps")
      ->check(kContext);
  x->add_option("--decode-steps", o->batch.decode_steps, "Timed decode steps per batch")->check(kIters);
  x->add_option("--mixed-batch", o->batch.mixed_batch, "Batch of the mixed prefill + decode steps "
                "(0: none)")->check(CLI::Range(int64_t(0), int64_t(4096)));
  x->add_option("--chunks", o->batch.chunks, "Prompt tokens mixed into each step")->delimiter(',')
      ->check(kContext);
  x->add_option("--mixed-steps", o->batch.mixed_steps, "Timed mixed steps per chunk size")->check(kIters);
  add_kv_cache_option(x, &o->batch.kv_cache, "KV cache storage");
  add_choice(x, &o->batch.compute, compute_choices(), "Compute mode: auto (bf16 where the CPU "
             "has it), bf16 or fp32");
  x->add_option("--seed", o->batch.seed, "Token seed");
  x->add_option("--threads", o->batch.threads, "Threads per rank")->check(threads_per_rank());
  add_report_options(x, &o->report);
}

void add_serve_bench(CLI::App* b, BenchOptions* o) {
  CLI::App* x = b->add_subcommand("serve", "Load against a running `modelone serve` (vLLM's "
                                  "benchmark_serving): throughput, TTFT / ITL / end-to-end "
                                  "percentiles per concurrency or request rate, vs the first point");
  ServeBenchOptions& s = o->serve;
  x->add_option("--url", s.url, "The server: http://HOST:PORT")->required();
  x->add_option("--model", s.model, "Model name to request (default: the first of /v1/models)");
  x->add_option("--api-key", s.api_key, "Sent as 'Authorization: Bearer KEY'");
  CLI::Option* c = x->add_option("--concurrency", s.concurrency, "Closed loop: clients at once, "
                                 "a point each")->delimiter(',')->check(count_in(1, 4096));
  CLI::Option* r = x->add_option("--request-rate", s.request_rate, "Open loop instead: Poisson "
                                 "arrivals at R requests/s, a point each")->delimiter(',')->check(positive());
  r->excludes(c);
  x->add_option("--max-concurrency", s.max_concurrency, "Open loop: requests in flight at most "
                "(0: no cap)")->check(count_in(0, 4096))->needs(r);
  x->add_option("--num-prompts", s.num_prompts, "Requests per point (default: max(4 x "
                "concurrency, 16), or max(10 s of arrivals, 16))")->check(count_in(1, 1000000));
  x->add_option("--input-len", s.input_len, "Prompt tokens (default 128)")->check(kContext);
  x->add_option("--output-len", s.output_len, "Tokens generated per request, ignore_eos "
                "(default 32)")->check(kContext);
  x->add_option("--input-len-spread", s.input_len_spread, "Prompt lengths uniform in len x "
                "[1-s, 1+s] (0: fixed)")->check(CLI::Range(0.0, 0.99));
  x->add_option("--output-len-spread", s.output_len_spread, "The same for output lengths")
      ->check(CLI::Range(0.0, 0.99));
  x->add_option("--vocab", s.vocab, "Prompt ids are random in [10, vocab) (default 256)")
      ->check(count_in(11, int64_t(1) << 31));
  x->add_option("--warmup", s.warmup, "Untimed requests before the first point (default 2)")
      ->check(count_in(0, 1000));
  x->add_option("--seed", s.seed, "Prompt, length and arrival seed");
  add_report_options(x, &o->report);
}

}  // namespace

void add_bench_command(CLI::App* app, BenchOptions* o) {
  CLI::App* b = app->add_subcommand("bench", "Benchmarks (each with its baseline and ratio)");
  b->require_subcommand(1);
  add_gemm_bench(b, o);
  add_attention_bench(b, o);
  add_engine_bench(b, o);
  add_ep_bench(b, o);
  add_moe_bench(b, o);
  add_context_bench(b, o);
  add_engram_bench(b, o);
  add_batch_bench(b, o);
  add_serve_bench(b, o);
  add_calibrate_bench(b, o);
}

int bench_command(CLI::App* app, const BenchOptions& o) {
  CLI::App* b = app->get_subcommand("bench");
  if (!b->parsed()) return -1;
  std::function<int()> body;
  if (b->got_subcommand("gemm")) body = [&] { return gemm_bench(o.gemm); };
  if (b->got_subcommand("attention")) body = [&] { return attention_bench(o.attention); };
  if (b->got_subcommand("engine")) body = [&] { return engine_bench(o.engine); };
  if (b->got_subcommand("ep")) body = [&] { return ep_bench(o.ep); };
  if (b->got_subcommand("moe")) body = [&] { return moe_bench(o.moe); };
  if (b->got_subcommand("context")) body = [&] { return context_bench(o.context); };
  if (b->got_subcommand("engram")) body = [&] { return engram_bench(o.engram); };
  if (b->got_subcommand("batch")) body = [&] { return batch_bench(o.batch); };
  if (b->got_subcommand("serve")) body = [&] { return serve_bench(o.serve); };
  if (b->got_subcommand("calibrate")) body = [&] { return calibrate_bench(o.calibrate); };
  if (!body) return -1;
  return run_report(o.report, body);
}

}  // namespace modelone::bench
