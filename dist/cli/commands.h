// The `modelone` subcommands: their options (registered with CLI11) and their bodies. Every rank
// runs the same command; only world rank 0 writes to stdout.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "dist/cli/sampling_options.h"
#include "dist/engram_store.h"
#include "dist/options.h"

namespace modelone {

struct ModelOptions {
  std::string model;
  std::vector<std::string> sets;
  std::string fake_quant;  // "", on, off: V4.1's in-forward rounding (default on for V4.1)
  // sets, with --fake-quant as the config field it sets.
  std::vector<std::string> all_sets() const;
  int threads = 0;  // 0: OMP_NUM_THREADS or all cores
  bool quiet = false;
};

// --engram, --engram-fetch, --engram-prefetch, --engram-ranks (run and bench).
struct EngramCli {
  std::string engram = "on", fetch = "get", prefetch = "on";
  std::vector<int> ranks;
  double budget_gib = 0;
  int64_t cache_rows = 0;
};
void add_engram_options(CLI::App* app, EngramCli* o);
// A choice flag from its table in dist/options.h: the texts it allows, its default in --help.
template <class T>
CLI::Option* add_choice(CLI::App* app, std::string* text, const Choices<T>& c,
                        const std::string& help) {
  return app->add_option(c.flag, *text, help)->check(CLI::IsMember(c.texts()))
      ->capture_default_str();
}
// --compute auto|fp32|bf16 (run and bench).
void add_compute_option(CLI::App* app, std::string* compute);
// --kv-cache auto|fp32|bf16|fp8|fp4 (run, inspect and the benches); `what` starts the help.
void add_kv_cache_option(CLI::App* app, std::string* kv_cache, const std::string& what);
EngramOptions engram_options(const EngramCli& o);

struct RunOptions {
  ModelOptions m;
  EngramCli engram;
  std::string ids, ids_file;
  std::string prompt, prompt_file;  // text for the tokenizer.json beside the checkpoint
  int64_t random_prompt = 0;
  uint64_t seed = 0;
  int64_t generate = 0;
  std::string logits_out;
  std::string kv_cache = kv_cache_choices().default_text();
  std::string compute = compute_choices().default_text();
  double memory_budget_gib = 0;  // 0: what the node makes available to a rank
  double watchdog_s = 0;         // 0: off
  int cp = 0, ep = 0;
  std::string cp_layout = layout_choices().default_text();
  std::string repack = repack_choices().default_text();
  bool json = false;
  int64_t prefill_chunk = 2048;
  bool ignore_eos = false;
  std::string dispatch = dispatch_choices().default_text();
  std::string combine = combine_choices().default_text();
  std::string transport = transport_choices().default_text();
  bool overlap = false;
  std::string expert_stats, expert_placement;
  SampleCli sample;
  std::string batch, out;  // --batch FILE.jsonl --out OUT.jsonl (dist/cli/batch_job.h)
  int64_t max_seqs = 64, step_tokens = 512;  // --batch's scheduler (dist/batch_scheduler.h)
  double cache_budget_gib = 0;               // 0: half of what the node gives a rank
  int64_t window = 0;      // perplexity: the prompt is a document read in windows of this many
  bool serving = false;    // serve: no prompt; requests arrive over HTTP
};

// `modelone perplexity` (dist/cli/perplexity_command.cpp): run's model, layout and compute
// flags, the document as its prompt (--file, --ids-file or --random-prompt) read in windows.
struct PerplexityOptions {
  RunOptions run;       // run.window: --context
  int64_t stride = 0;   // 0: --context
  bool json = false;
};

// `modelone serve` (dist/cli/serve_command.cpp): run's model, layout, compute and batch flags
// (run.serving set), and where and how rank 0 serves HTTP.
struct ServeOptions {
  RunOptions run;
  std::string host = "127.0.0.1", api_key, name;  // name: what clients call the model
  int port = 8080;
  int64_t max_queue = 256;   // requests accepted and not ended; more get 429
  int64_t max_body_mib = 8;
  double grace_s = 30;
};

struct PlanExpertsOptions {
  std::string stats, out;
  int ep = 0;              // default: the ep the stats were recorded with
  int64_t redundant = -1;  // extra expert copies per layer; default: ep
  bool json = false;
};

// `modelone plan` (plan_command.cpp): layout 0s are searched.
struct PlanOptions {
  std::string model;
  std::vector<std::string> sets;
  std::string machine = "machine.json";  // `bench calibrate`'s profile
  int nodes = 1, ranks_per_node = 0, threads = 0, cp = 0, ep = 0, engram_ranks = 0;
  int cores_per_node = 0;                // 0: the profile's machine
  double node_memory_gib = 0;            // 0: this machine's memory
  int64_t context = 4096, batch = 1, prefill_chunk = 2048;
  std::string network = "100g,2us", goal = "decode", weights = "stored";
  std::string kv_cache = kv_cache_choices().default_text();
  std::string output = "text";           // text, md, csv, json
  bool json = false, sweep_nodes = false;
  bool other_build = false;              // read a profile of another build (with a warning)
  int top = 8;                           // layouts shown in text / md / csv
};

struct InspectOptions {
  ModelOptions m;
  int64_t context = 0;  // 0: 4096, or the model's whole context when shorter
  std::string kv_cache = kv_cache_choices().default_text();
  int cp = 1, ep = 1;
  double mem_per_rank_gib = 24;
  bool json = false;
  bool tensors = false;
};

void add_model_options(CLI::App* app, ModelOptions* o);
void add_run_command(CLI::App* app, RunOptions* o);
void add_inspect_command(CLI::App* app, InspectOptions* o);
void add_plan_experts_command(CLI::App* app, PlanExpertsOptions* o);

int run_command(const RunOptions& o);
void add_perplexity_command(CLI::App* app, PerplexityOptions* o);
void add_serve_command(CLI::App* app, ServeOptions* o);
int serve_command(const ServeOptions& o);
int perplexity_command(const PerplexityOptions& o);
int inspect_command(const InspectOptions& o);
int plan_experts_command(const PlanExpertsOptions& o);
void add_plan_command(CLI::App* app, PlanOptions* o);
int plan_command(const PlanOptions& o);

// Progress and logs: stderr, rank 0 only, unless quiet.
void log_line(bool quiet, const std::string& msg);
std::string fmt_seconds(double s);  // "1.234 s"

}  // namespace modelone
