#include "bench/bench_command.h"

namespace modelone::bench {

void add_bench_command(CLI::App* app, BenchOptions* o) {
  CLI::App* b = app->add_subcommand("bench", "Benchmarks (each with its baseline and ratio)");
  b->require_subcommand(1);

  CLI::App* g = b->add_subcommand("gemm", "bf16-weight GEMM vs OpenBLAS sgemm on fp32 weights");
  g->add_option("--tokens", o->gemm.tokens, "Rows of x (batch sizes)")->delimiter(',');
  g->add_option("--shape", o->gemm.shape, "Only this V4-Flash projection (e.g. wq_b)");
  g->add_option("--threads", o->gemm.threads, "Threads (default: all cores)");
  g->add_flag("--json", o->gemm.json, "One JSON object per line");

  CLI::App* a = b->add_subcommand("attention", "Decode cost per layer kind vs context, vs dense");
  a->add_option("--model", o->attention.model, "Preset or config for the layer shape");
  a->add_option("--set", o->attention.sets, "Config overrides key=value");
  a->add_option("--contexts", o->attention.contexts, "Context lengths")->delimiter(',');
  a->add_option("--threads", o->attention.threads, "Threads (default: all cores)");
  a->add_flag("--json", o->attention.json, "One JSON object per line");

  CLI::App* e = b->add_subcommand("engine", "Prefill tokens/s and decode time per token vs context");
  e->add_option("--model", o->engine.model, "Preset, .pbtxt or checkpoint directory");
  e->add_option("--set", o->engine.sets, "Config overrides key=value");
  e->add_option("--contexts", o->engine.contexts, "Prompt lengths")->delimiter(',');
  e->add_option("--decode-steps", o->engine.decode_steps, "Decode steps timed per context");
  e->add_option("--prefill-chunk", o->engine.prefill_chunk, "Prompt tokens per forward step");
  e->add_option("--kv-cache", o->engine.kv_cache, "fp32 or bf16")->check(CLI::IsMember({"fp32", "bf16"}));
  e->add_option("--seed", o->engine.seed, "Prompt seed");
  e->add_option("--threads", o->engine.threads, "Threads per rank");
  e->add_flag("--json", o->engine.json, "One JSON object per line");
}

int bench_command(CLI::App* app, const BenchOptions& o) {
  CLI::App* b = app->get_subcommand("bench");
  if (!b->parsed()) return -1;
  if (b->got_subcommand("gemm")) return gemm_bench(o.gemm);
  if (b->got_subcommand("attention")) return attention_bench(o.attention);
  if (b->got_subcommand("engine")) return engine_bench(o.engine);
  return -1;
}

}  // namespace modelone::bench
