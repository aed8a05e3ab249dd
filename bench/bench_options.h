// The benchmarks behind `modelone bench ...` (each times its baseline in the same run): their
// options and entry points. The command line that fills these lives in dist/cli/bench_command.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_report.h"
#include "dist/options.h"

namespace modelone::bench {

struct GemmBenchOptions {
  std::vector<int64_t> tokens = {1, 4, 64, 512, 2048};
  std::string shape;
  std::string weights = "bf16";  // stored dtype of the weights: bf16, fp8 or fp4
  int threads = 0;
};

struct AttentionBenchOptions {
  std::string model = "v4-flash";
  std::vector<std::string> sets;
  std::vector<int64_t> contexts = {1024, 2048, 4096, 8192, 16384, 32768};
  int threads = 0;
};

struct EngineBenchOptions {
  std::string model = "tiny";
  std::vector<std::string> sets;
  std::vector<int64_t> contexts = {1024, 2048, 4096, 8192, 16384, 32768};
  int64_t decode_steps = 8;
  int64_t prefill_chunk = 2048;
  std::string kv_cache = kv_cache_choices().default_text();
  std::string compute = compute_choices().default_text();  // timed against fp32 in the same run
  std::string repack = repack_choices().default_text();
  uint64_t seed = 0;
  int threads = 0;
};

struct EpBenchOptions {
  std::string model = "v4-flash";
  std::vector<std::string> sets;
  std::vector<int64_t> tokens = {1, 2, 4, 8, 16, 32, 64, 128, 4096, 8192, 16384};
  std::string dispatch = dispatch_choices().default_text();
  std::string combine = combine_choices().default_text();
  std::string transport = transport_choices().default_text();
  int iters = 9;
  uint64_t seed = 0;
  int threads = 0;
};

struct MoeBenchOptions {
  std::string model = "v4-flash";
  std::vector<std::string> sets;
  int64_t global_tokens = 512;
  std::string dispatch = dispatch_choices().default_text();
  std::string combine = combine_choices().default_text();
  std::string transport = transport_choices().default_text();
  bool overlap = false;
  int iters = 5;
  int threads = 0;
  std::string compute = compute_choices().default_text();  // the experts' and the baseline's
  std::string experts = "grouped";  // grouped (packed at load), unpacked (packed per call) or each
};

struct ContextBenchOptions {
  std::string model = "v4-flash";
  std::vector<std::string> sets;  // after the defaults: the cut (layers), 8 experts
  std::vector<int64_t> layers;    // the cut (keep_layers); default: see context_bench.cpp
  std::vector<int64_t> prefill = {8192, 16384, 32768, 65536};
  std::vector<int64_t> decode = {8192, 65536, 262144, 1048576};
  std::vector<std::string> layouts = {layout_choices().default_text()};
  std::string phase = "both";  // prefill, decode or both
  int64_t decode_steps = 4;
  int64_t prefill_chunk = 2048;
  std::string kv_cache = kv_cache_choices().default_text();
  std::string compute = compute_choices().default_text();  // both sides of every comparison
  int threads = 1;  // one thread per rank on both sides of every comparison
  uint64_t seed = 0;
};

struct EngramBenchOptions {
  std::string model = "v41-flash";
  std::vector<std::string> sets;
  std::vector<int64_t> tokens = {1, 512, 4096};  // fetch: tokens per step over the world
  std::vector<int64_t> step_tokens = {512, 4096};
  std::string part = "both";                     // fetch, step or both
  int64_t decode_steps = 8;
  int iters = 5;
  int threads = 1;
  uint64_t seed = 0;
};

// `bench batch` (bench/batch_bench.cpp): decode throughput against the batch, and decode steps
// with prompt chunks mixed in.
struct BatchBenchOptions {
  std::string model = "v4-flash";
  std::vector<std::string> sets;  // after the default cut: num_hidden_layers=4, n_routed_experts=16
  std::vector<int64_t> batches = {1, 2, 4, 8, 16, 32, 64};  // sequences over the world
  int64_t context = 256;       // positions each sequence holds before the timed steps
  int64_t decode_steps = 8;    // timed decode steps per batch
  int64_t mixed_batch = 32;    // the batch the mixed steps run at (0: none)
  std::vector<int64_t> chunks = {32, 64, 128, 256};  // prompt tokens mixed into each step
  int64_t mixed_steps = 16;    // timed mixed steps per chunk size
  std::string kv_cache = kv_cache_choices().default_text();
  std::string compute = compute_choices().default_text();
  uint64_t seed = 0;
  int threads = 0;
};

// `bench calibrate` (bench/calibrate*.cpp): the machine profile `modelone plan` reads.
struct CalibrateBenchOptions {
  std::string out = "machine.json";
  std::vector<int64_t> threads;                        // default 1 .. the rank's threads
  std::vector<std::string> dtypes = {"bf16", "fp8", "fp4"};  // stored weight dtypes
  std::string compute = compute_choices().default_text();
  bool quick = false;                                  // fewer, smaller points (tests)
  int passes = 0;  // whole passes of the kernels, each point their median; 0: 3 (--quick: 1)
  // "inter": only the world's collectives, added to --out as inter-node; "cores": only the
  // node's, in a world within its cores, added as the links of layouts that fit the cores.
  std::string links_as;
};

// `bench serve` (bench/serve_bench.cpp): a load generator against a running `modelone serve` (or
// any OpenAI-compatible server that streams token_ids), in the manner of vLLM's benchmark_serving.
struct ServeBenchOptions {
  std::string url;                    // http://host:port of the server
  std::string model;                  // empty: the first of GET /v1/models
  std::string api_key;                // sent as "Authorization: Bearer KEY" when set
  std::vector<int64_t> concurrency = {1, 2, 4, 8, 16, 32, 64};  // closed loop: clients at once
  std::vector<double> request_rate;   // open loop (Poisson arrivals, requests/s); replaces the above
  int64_t max_concurrency = 0;        // open loop: requests in flight at most (0: no cap)
  int64_t num_prompts = 0;            // per point; 0: max(4 x concurrency, 16), or 10 s of arrivals
  int64_t input_len = 128, output_len = 32;
  double input_len_spread = 0, output_len_spread = 0;  // lengths uniform in len x [1-s, 1+s]
  int64_t vocab = 256;                // prompt ids uniform in [10, vocab): below every tiny vocab
  int64_t warmup = 2;                 // requests before the first point, not measured
  uint64_t seed = 0;
};

struct BenchOptions {
  ReportOptions report;  // --repetitions, --output, --json: the same on every subcommand
  EpBenchOptions ep;
  MoeBenchOptions moe;
  GemmBenchOptions gemm;
  AttentionBenchOptions attention;
  EngineBenchOptions engine;
  ContextBenchOptions context;
  EngramBenchOptions engram;
  BatchBenchOptions batch;
  ServeBenchOptions serve;
  CalibrateBenchOptions calibrate;
};

int gemm_bench(const GemmBenchOptions& o);
int calibrate_bench(const CalibrateBenchOptions& o);
int attention_bench(const AttentionBenchOptions& o);
int engine_bench(const EngineBenchOptions& o);
int ep_bench(const EpBenchOptions& o);
int engram_bench(const EngramBenchOptions& o);
int moe_bench(const MoeBenchOptions& o);
int batch_bench(const BatchBenchOptions& o);
int context_bench(const ContextBenchOptions& o);
int serve_bench(const ServeBenchOptions& o);

}  // namespace modelone::bench
