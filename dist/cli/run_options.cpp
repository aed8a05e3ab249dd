// The flags of `modelone run` (and the model, compute, KV-cache and Engram flags inspect and the
// benchmarks share): registration with their checks and defaults, and the Engram flags' options.
#include <string>
#include <vector>

#include "dist/cli/commands.h"
#include "dist/cli/validators.h"

namespace modelone {

void add_model_options(CLI::App* app, ModelOptions* o) {
  app->add_option("--model", o->model, "Preset name (tiny, tiny-engram, v4-flash, v4-pro, v41-flash), .pbtxt config, or "
                                       "checkpoint directory")
      ->required();
  app->add_option("--set", o->sets, "Override a config field: key=value (repeatable)");
  app->add_option("--threads", o->threads, "Compute threads per rank (default: OMP_NUM_THREADS "
                                           "or all cores)")
      ->check(non_negative());
  app->add_flag("--quiet", o->quiet, "No progress lines on stderr");
  app->add_option("--fake-quant", o->fake_quant, "DeepSeek-V4.1's in-forward rounding of the "
                  "window KV (FP8), compressed entries and indexer queries and keys (FP4): on "
                  "(default for V4.1; part of its numerics) or off (the exact comparisons); V4 has none")
      ->check(CLI::IsMember({"on", "off"}));
}

std::vector<std::string> ModelOptions::all_sets() const {
  std::vector<std::string> s = sets;
  if (!fake_quant.empty()) s.push_back(fake_quant == "on" ? "fake_quant=true" : "fake_quant=false");
  return s;
}

void add_run_command(CLI::App* app, RunOptions* o) {
  CLI::App* run = app->add_subcommand("run", "Prefill a prompt and generate (greedy, or sampled)");
  add_model_options(run, &o->m);
  auto* ids = run->add_option("--ids", o->ids, "Prompt token ids: 1,2,3 or '1 2 3'");
  auto* ids_file = run->add_option("--ids-file", o->ids_file, "File of prompt token ids ('-': standard "
                                   "input, read on rank 0)");
  auto* rnd = run->add_option("--random-prompt", o->random_prompt, "Random prompt of N tokens")
                  ->check(positive());
  auto* text = run->add_option("--prompt", o->prompt, "Prompt text, encoded with the "
                               "tokenizer.json beside the checkpoint's config.json");
  auto* text_file = run->add_option("--prompt-file", o->prompt_file,
                                    "File of prompt text (used as is, a final newline included; '-': "
                                    "standard input, read on rank 0)");
  auto* batch = run->add_option("--batch", o->batch, "JSONL file of requests, one object a line: id, "
                                "prompt or ids, and OpenAI's sampling keys (answers go to --out)");
  auto* out = run->add_option("--out", o->out, "JSONL answers of --batch, appended as each "
                              "request finishes; a rerun skips the ids it already answers");
  batch->needs(out);
  out->needs(batch);
  run->add_option("--max-seqs", o->max_seqs, "--batch: sequences a rank decodes at once (each of "
                  "n samples counts)")->check(CLI::Range(int64_t(1), int64_t(4096)))->needs(batch);
  run->add_option("--step-tokens", o->step_tokens, "--batch: tokens per step, the running "
                  "sequences' next tokens first, prompt chunks in the rest")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))->needs(batch);
  run->add_option("--cache-budget", o->cache_budget_gib, "--batch: GiB of caches a rank holds; "
                  "a request waits until its worst case fits (default: half of the node's "
                  "available memory over its ranks)")->check(positive())->needs(batch);
  for (CLI::Option* a : {ids, ids_file, rnd, text, text_file}) batch->excludes(a);
  ids->excludes(ids_file)->excludes(rnd);
  ids_file->excludes(rnd);
  for (CLI::Option* a : {ids, ids_file, rnd, text}) {
    if (a != text) a->excludes(text);
    a->excludes(text_file);
  }
  run->add_option("--seed", o->seed, "Seed for --random-prompt")->check(non_negative());
  run->add_option("--generate", o->generate, "Tokens to generate after the prompt (greedy "
                  "unless a sampling option says otherwise)")
      ->check(non_negative());
  add_sampling_options(run, &o->sample);
  run->add_option("--logits-out", o->logits_out, "Write prompt logits [T, vocab] float32 .npy")
      ->excludes(batch);
  add_kv_cache_option(run, &o->kv_cache, "KV cache storage");
  run->add_option("--cp", o->cp, "Context-parallel ranks per sequence (default: the world; with "
                  "--batch, 1: each rank serves its own requests)")
      ->check(CLI::Range(1, 1 << 20));
  add_choice(run, &o->cp_layout, layout_choices(), "How a prefill step's positions split over "
             "the cp ranks: zigzag (balanced) or contiguous");
  run->add_option("--ep", o->ep, "Expert-parallel group size (default: world size)")
      ->check(CLI::Range(1, 1 << 20));
  add_choice(run, &o->repack, repack_choices(), "bf16 compute: BF16 weights repacked at load "
             "into the panel kernel's layout: all (projections, experts, LM head), experts, none");
  run->add_flag("--json", o->json, "Print one JSON object with generated tokens and timings");
  run->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per rank per forward step")
      ->check(positive());
  run->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past the end-of-sequence token");
  add_choice(run, &o->dispatch, dispatch_choices(), "Expert dispatch payload: fp32, bf16 or fp8 "
             "(e4m3, a scale per 128 values)");
  add_choice(run, &o->combine, combine_choices(), "Expert combine payload: fp32 or bf16");
  run->add_flag("--overlap", o->overlap,
                "Two micro-batches: one exchanges while the other computes (MPI transport)");
  add_choice(run, &o->transport, transport_choices(), "Expert exchange: auto (node-shared "
             "memory when the ep group is on one node, else MPI all-to-all), mpi or shm");
  run->add_option("--expert-stats", o->expert_stats, "Write tokens per expert per layer (JSON)");
  run->add_option("--expert-placement", o->expert_placement,
                  "Expert placement plan (JSON, from `modelone plan-experts`)");
  add_engram_options(run, &o->engram);
  add_compute_option(run, &o->compute);
  run->add_option("--memory-budget", o->memory_budget_gib, "GiB one rank may use; a run that needs "
                  "more is refused before loading (default: the node's available memory, or its "
                  "cgroup limit, over its ranks)")->check(positive());
  // At least a second: heartbeats go every quarter of it (at most every second), and a shorter
  // timeout would blame healthy ranks for a scheduler's pause.
  run->add_option("--watchdog", o->watchdog_s, "Seconds a rank may go without answering (stopped "
                  "by SIGSTOP, a frozen or unreachable node), or every rank may wait in calls "
                  "that do not match, before the job stops with a line naming them (default: off)")
      ->check(seconds_in(1, 86400));
}

void add_compute_option(CLI::App* app, std::string* compute) {
  add_choice(app, compute, compute_choices(), "Arithmetic of the weight products: fp32 (the "
             "exact reference), bf16 (bf16 inputs, fp32 sums; needs AVX512-BF16 or AMX), or auto "
             "(bf16 where the CPU has it)");
}

void add_kv_cache_option(CLI::App* app, std::string* kv_cache, const std::string& what) {
  add_choice(app, kv_cache, kv_cache_choices(), what + ": auto (fp4 for V4.1 with its fake "
             "quantization on, else the compute's dtype), fp32, bf16, fp8 (FlashMLA's MODEL1 "
             "layout: e4m3 with a scale per 64, RoPE in bf16; 584 bytes an entry in V4) or fp4 "
             "(V4.1's trained form: FP8 window, FP4 entries and indexer keys; 288 + 68 bytes)");
}

void add_engram_options(CLI::App* app, EngramCli* o) {
  app->add_option("--engram", o->engram, "Engram blocks of V4.1 models: on, or off to run the "
                  "same model without them")->check(CLI::IsMember({"on", "off"}));
  app->add_option("--engram-fetch", o->fetch, "How remote Engram rows arrive: get (one-sided "
                  "MPI_Get) or alltoall (owner-sorted request/response)")
      ->check(CLI::IsMember({"get", "alltoall"}));
  app->add_option("--engram-prefetch", o->prefetch, "Request every Engram layer's rows at the "
                  "start of the step (on) or just before the layer (off)")
      ->check(CLI::IsMember({"on", "off"}));
  app->add_option("--engram-ranks", o->ranks, "World ranks that hold the Engram tables "
                  "(default: all)")->delimiter(',');
  app->add_option("--engram-budget", o->budget_gib, "Most GiB of Engram table one rank may hold "
                  "(default: the node's available memory over its ranks)")
      ->check(positive());
  app->add_option("--engram-cache", o->cache_rows, "Rows per Engram table each rank keeps of "
                  "recently fetched remote rows (LRU; default 0: off)")
      ->check(non_negative());
}

EngramOptions engram_options(const EngramCli& o) {
  EngramOptions e;
  e.enabled = o.engram == "on";
  e.fetch = engram_fetch_from_name(o.fetch);
  e.prefetch = o.prefetch == "on";
  e.owners = o.ranks;
  e.budget_gib = o.budget_gib;
  e.cache_rows = o.cache_rows;
  return e;
}

}  // namespace modelone
