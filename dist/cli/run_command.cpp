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
#include "dist/cli/generation.h"
#include "dist/cli/prompt_input.h"
#include "dist/binding.h"
#include "dist/engine.h"
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

namespace {

// Refuses a run whose busiest rank cannot fit (weights as stored, caches for the whole context,
// its Engram share: the sizing `inspect` prints) before anything is allocated.
void check_memory(const ModelSource& ms, int64_t context, DType kv, const RankGrid& grid,
                  const RunOptions& o) {
  const ModelConfig& c = ms.cfg;
  const double budget_gib = o.memory_budget_gib;
  const WeightBytes stored = ms.checkpoint ? checkpoint_weight_bytes(c, *ms.checkpoint)
                                           : uniform_weight_bytes(c, c.weight_dtype);
  RankMemory need = rank_memory(c, context, stored, kv, grid.cp, grid.ep);
  if (o.engram.engram == "on") need.engram_bytes += engram_cache_bytes(c, o.engram.cache_rows);
  MemoryLimit lim = rank_memory_limit(grid.local_size);
  if (budget_gib > 0) lim = {int64_t(budget_gib * double(int64_t(1) << 30)), "--memory-budget"};
  if (lim.bytes <= 0 || need.total() <= lim.bytes) return;
  auto gib = [](int64_t b) {
    char s[32];
    if (b < (int64_t(1) << 30)) std::snprintf(s, sizeof s, "%.1f MiB", double(b) / double(1 << 20));
    else std::snprintf(s, sizeof s, "%.2f GiB", double(b) / double(int64_t(1) << 30));
    return std::string(s);
  };
  fail("this run needs ", gib(need.total()), " per rank (weights ", gib(need.weight_bytes),
       ", caches ", gib(need.cache_bytes()), ", Engram ", gib(need.engram_bytes), " at cp ", grid.cp,
       ", ep ", grid.ep, ") but a rank here may use ", gib(lim.bytes), " (", lim.source,
       "); use more ranks (`modelone inspect --mem-per-rank` shows how many) or set --memory-budget");
}

// The tokenizer.json beside the checkpoint's config.json. --prompt needs it on every rank;
// otherwise it only gives rank 0's text output, so a file it cannot read costs the text, not
// the run.
std::unique_ptr<Tokenizer> find_tokenizer(const ModelSource& ms, const RunOptions& o,
                                          const char* flag, bool root) {
  const bool text = !o.prompt.empty() || !o.prompt_file.empty();
  const std::string path =
      ms.dir.empty() ? "" : (std::filesystem::path(ms.dir) / "tokenizer.json").string();
  if (text) {
    const bool pbtxt = o.m.model.size() > 6 && o.m.model.rfind(".pbtxt") == o.m.model.size() - 6;
    MO_REQUIRE(!ms.dir.empty(), flag, " needs a tokenizer.json in the model directory; '",
               o.m.model, "' is a ", pbtxt ? ".pbtxt config" : "preset", " with none (use --ids)");
    MO_REQUIRE(std::filesystem::exists(path), flag, " needs a tokenizer.json in the model "
               "directory; '", ms.dir, "' has none (use --ids)");
    return std::make_unique<Tokenizer>(Tokenizer::load(path));
  }
  // Stop strings and batch jobs decide from text on every rank; otherwise only rank 0 prints it.
  const bool everywhere = !o.sample.stop.empty() || !o.batch.empty();
  if ((!root && !everywhere) || path.empty() || !std::filesystem::exists(path)) return nullptr;
  try {
    return std::make_unique<Tokenizer>(Tokenizer::load(path));
  } catch (const Error& e) {
    log_line(o.m.quiet, std::string("no text output: ") + e.what());
    return nullptr;
  }
}

// The replicas of every expert of every layer, as text (to compare the plan across ranks).
std::string placement_text(const std::vector<ExpertPlacement>& placement) {
  std::string t;
  for (const ExpertPlacement& p : placement) {
    for (const auto& ranks : p.replicas) {
      for (int r : ranks) t += std::to_string(r) + ",";
      t += ";";
    }
    t += "|";
  }
  return t;
}

// --ids-file's or --prompt-file's bytes, read once (see prompt_input.h); "" without either. The
// bound: every position of the model, each as the longest token the tokenizer has (text) or as
// a 10-digit id with a separator (ids), plus room for white space.
std::string read_prompt_file(const RunOptions& o, const ModelConfig& cfg, const Tokenizer* tok,
                             const comm::Comm& world) {
  const bool text = !o.prompt_file.empty();
  if (!text && o.ids_file.empty()) return "";
  const int64_t per_token = text ? tok->longest_token_bytes() : 11;
  const int64_t bound = std::min<int64_t>(cfg.max_position_embeddings * per_token + 4096, int64_t(1) << 30);
  return read_input_once(world, text ? o.prompt_file : o.ids_file,
                         text ? "--prompt-file" : "--ids-file", bound);
}

// The text prompt's ids (--prompt or --prompt-file), tokenized once, on rank 0, and broadcast: a
// long text costs the other ranks nothing. Empty without a text prompt.
std::vector<int32_t> encode_once(const RunOptions& o, const Tokenizer* tok,
                                 const std::string& file_text, const comm::Comm& world) {
  if (o.prompt.empty() && o.prompt_file.empty()) return {};
  std::vector<int32_t> ids;
  comm::agree(world, [&] {
    if (world.rank() != 0) return;
    try {
      ids = tok->encode(o.prompt_file.empty() ? o.prompt : file_text);
    } catch (const Error& e) {
      fail(o.prompt_file.empty() ? "--prompt" : "--prompt-file", ": ", e.what());
    }
  });
  int64_t n = int64_t(ids.size());
  world.bcast(&n, 1, 0);
  ids.resize(size_t(n));
  if (n > 0) world.bcast(ids.data(), n, 0);
  return ids;
}

// The prompt's token ids from whichever flag gave it, checked against the vocabulary and the
// positions. Local: files were read and text tokenized before.
std::vector<int32_t> make_prompt(const RunOptions& o, const ModelConfig& cfg,
                                 const std::vector<int32_t>& text_ids, const std::string& file_text) {
  auto check_positions = [&](int64_t prompt_len) {
    MO_REQUIRE(prompt_len + o.generate <= cfg.max_position_embeddings, "the prompt (", prompt_len,
               " tokens) and --generate ", o.generate, " need ", prompt_len + o.generate,
               " positions; ", cfg.name, " has max_position_embeddings ", cfg.max_position_embeddings);
  };
  std::vector<int32_t> prompt;
  if (!o.prompt.empty() || !o.prompt_file.empty()) {
    const char* flag = o.prompt_file.empty() ? "--prompt" : "--prompt-file";
    prompt = text_ids;
    MO_REQUIRE(!prompt.empty(), flag, ": the text gives no tokens");
    for (auto id : prompt)
      MO_REQUIRE(id < cfg.vocab_size, flag, ": tokenizer.json gave token id ", id,
                 ", outside the vocabulary [0, ", cfg.vocab_size, ") of ", cfg.name,
                 ": the tokenizer does not belong to this model");
  } else if (!o.ids.empty()) {
    prompt = parse_ids(o.ids, "--ids");
  } else if (!o.ids_file.empty()) {
    prompt = parse_ids(file_text, "--ids-file " + o.ids_file);
  } else if (o.random_prompt > 0) {
    // Before drawing: 2e9 tokens would take a minute and 8 GB per rank only to be refused.
    check_positions(o.random_prompt);
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int32_t> d(0, int32_t(cfg.vocab_size - 1));
    for (int64_t i = 0; i < o.random_prompt; ++i) prompt.push_back(d(rng));
  }
  MO_REQUIRE(!prompt.empty(), "no prompt: give --ids, --ids-file, --random-prompt, --prompt or "
             "--prompt-file");
  for (auto id : prompt)
    MO_REQUIRE(id < cfg.vocab_size, "token id ", id, " is outside the vocabulary [0, ",
               cfg.vocab_size, ") of ", cfg.name);
  check_positions(int64_t(prompt.size()));
  return prompt;
}

std::string fmt_seconds(double s) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f s", s);
  return b;
}

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

}  // namespace

namespace {

// What a run is set up with before any weight is loaded: the grid, the model, the prompt.
struct RunSetup {
  RankGrid grid;
  int threads = 1;
  ModelSource ms;
  std::unique_ptr<Tokenizer> tokenizer;
  DType kv = DType::F32;
  std::vector<int32_t> prompt;
  GenerationSpec gen;  // --generate, --ignore-eos and the sampling flags
  BatchInput batch;    // --batch: the requests left to answer
  size_t out_keep = 0; // --batch: the bytes of --out that hold whole answers
};

// --batch: the requests (read on rank 0, parsed on every rank), less those --out answers
// already; the memory check takes the longest of them.
void set_up_batch(const RunOptions& o, RunSetup* r) {
  const comm::Comm& world = r->grid.world;
  const std::string text = read_input_once(world, o.batch, "--batch", int64_t(1) << 30);
  std::string out_text;
  comm::agree(world, [&] {
    if (world.rank() != 0) return;
    MO_REQUIRE(!std::filesystem::is_directory(o.out), "--out ", o.out, " is a directory");
    if (!std::filesystem::exists(o.out)) return;
    std::ifstream f(o.out, std::ios::binary);
    MO_REQUIRE(f, "--out ", o.out, ": cannot read it");
    out_text.assign(std::istreambuf_iterator<char>(f), {});
  });
  world.bcast_string(&out_text, 0);
  comm::agree(world, [&] {
    const std::set<std::string> answered = answered_ids(out_text, o.out, &r->out_keep);
    GenerationSpec defaults = r->gen;
    if (o.generate == 0) defaults.max_tokens = 16;  // OpenAI's completions default
    r->batch = parse_batch(text, o.batch, defaults, r->tokenizer.get(), r->ms.cfg, answered);
    check_memory(r->ms, std::max<int64_t>(1, r->batch.longest), r->kv, r->grid, o);
  });
}

// How the sequence ends and how its tokens are picked, from --generate, --ignore-eos and the
// sampling flags (checked against the vocabulary).
GenerationSpec generation_spec(const RunOptions& o, int64_t vocab, const Tokenizer* tokenizer) {
  GenerationSpec g;
  g.max_tokens = o.generate;
  g.ignore_eos = o.ignore_eos;
  g.sampling = sampling_params(o.sample, vocab);
  g.stop_ids = stop_token_ids(o.sample, vocab);
  g.stop = o.sample.stop;
  for (const std::string& s : g.stop) MO_REQUIRE(!s.empty(), "--stop: a stop string is empty");
  MO_REQUIRE(g.stop.empty() || tokenizer, "--stop needs the tokenizer.json beside the "
             "checkpoint (this model has none); --stop-ids works without one");
  return g;
}

// The grid, threads, model, tokenizer and prompt, each step agreed on over the ranks, then the
// resolved run compared across them.
void set_up_run(const RunOptions& o, RunSetup* r) {
  comm::Comm world = comm::Comm::world();
  comm::agree(world, [&] { r->grid = RankGrid::make(o.cp, o.ep); });
  const RankGrid& grid = r->grid;
  comm::agree(world, [&] { r->threads = grid.threads(o.m.threads); });
  set_compute_threads(r->threads);
  comm::agree(grid.world, [&] {
    set_compute(resolve_compute(compute_choices().parse(o.compute)));
    r->ms = resolve_model(o.m.model, o.m.all_sets());
    for (const std::string& w : r->ms.warnings) log_line(o.m.quiet, "warning: " + w);
    r->kv = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), r->ms.cfg, compute_mode());
    r->tokenizer = find_tokenizer(r->ms, o, o.prompt_file.empty() ? "--prompt" : "--prompt-file",
                                  grid.is_root());
    r->gen = generation_spec(o, r->ms.cfg.vocab_size, r->tokenizer.get());
  });
  if (!o.batch.empty()) {
    set_up_batch(o, r);
  } else {
    const std::string file_text = read_prompt_file(o, r->ms.cfg, r->tokenizer.get(), grid.world);
    const std::vector<int32_t> text_ids = encode_once(o, r->tokenizer.get(), file_text, grid.world);
    comm::agree(grid.world, [&] {
      r->prompt = make_prompt(o, r->ms.cfg, text_ids, file_text);
      check_memory(r->ms, int64_t(r->prompt.size()) + o.generate, r->kv, grid, o);
    });
  }
  // The same command line can still resolve differently per node: another config.json or
  // --ids-file behind the same path, or a CPU that takes another compute path.
  std::string ids;
  for (auto id : r->prompt) ids += std::to_string(id) + ",";
  comm::agree_fields(grid.world, "the resolved run", {{"model config", r->ms.config_text},
                                                      {"prompt token ids", ids},
                                                      {"compute", compute_name(compute_mode())}});
  log_line(o.m.quiet, "model: " + r->ms.description + ", " + std::to_string(r->ms.cfg.num_layers) +
                          " layers, world " + std::to_string(grid.W) + " (dp " +
                          std::to_string(grid.dp) + ", cp " + std::to_string(grid.cp) + ", ep " +
                          std::to_string(grid.ep) + "), " + std::to_string(r->threads) +
                          " threads per rank, " + compute_name(compute_mode()) + " compute");
  std::vector<std::string> binding;
  comm::agree(grid.world, [&] { binding = gather_binding(grid.world, r->threads); });
  for (const std::string& line : binding) log_line(o.m.quiet, line);
}

// The engine: the expert placement (compared across ranks), the options from the flags, and this
// rank's weights (the shared ones and the routed experts its ep rank holds).
std::unique_ptr<Engine> load_engine(const RunOptions& o, const RunSetup& r, double t_start) {
  const RankGrid& grid = r.grid;
  const ModelConfig& cfg = r.ms.cfg;
  std::vector<ExpertPlacement> placement;
  comm::agree(grid.world, [&] {
    placement = o.expert_placement.empty()
                    ? ExpertPlacement::uniform(cfg.n_experts, grid.ep, cfg.num_layers)
                    : read_placement(o.expert_placement, cfg.num_layers, cfg.n_experts, grid.ep);
  });
  // Each node reads its own copy of the plan: another file behind the same path would make the
  // ranks route to experts that are not where the others think.
  if (!o.expert_placement.empty())
    comm::agree_fields(grid.world, "--expert-placement", {{"the plan read", placement_text(placement)}});
  EngineOptions eopt;
  eopt.kv_dtype = r.kv;
  eopt.moe.dispatch = dispatch_choices().parse(o.dispatch);
  eopt.moe.combine = combine_choices().parse(o.combine);
  eopt.moe.overlap = o.overlap;
  eopt.moe.transport = transport_choices().parse(o.transport);
  eopt.cp_layout = layout_choices().parse(o.cp_layout);
  eopt.repack = repack_choices().parse(o.repack);
  eopt.prefill_chunk = o.prefill_chunk;
  eopt.engram = engram_options(o.engram);
  std::unique_ptr<Engine> engine;
  comm::agree(grid.world, [&] {
    double last = comm::now();
    engine = make_engine(r.ms, grid, eopt, placement, [&](int64_t done, int64_t total) {
      if (comm::now() - last < 5 || done == total) return;  // a line every few seconds
      last = comm::now();
      log_line(o.m.quiet, "loading weights: layer " + std::to_string(done) + " / " +
                              std::to_string(total) + ", " + fmt_seconds(comm::now() - t_start));
    });
  });
  const ModelWeights& w = engine->weights();
  log_line(o.m.quiet, "weights: " + std::to_string(w.bytes >> 20) + " MiB on rank 0" +
                          (w.repacked ? " (" + std::to_string(w.repacked >> 20) +
                                            " MiB repacked for the bf16 panel kernel)" : "") +
                          ", loaded in " + fmt_seconds(comm::now() - t_start));
  return engine;
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

// Collective: the engine's, MoE's and Engram's timers and counters, min / mean / max over the
// world's ranks ({"moe": {"route": {"min": .., "mean": .., "max": ..}, ..}, ..}).
nlohmann::json over_ranks(Engine& engine, const comm::Comm& world) {
  nlohmann::json j;
  auto put = [&](const char* part, const comm::Reduced& red) {
    for (const std::string& f : red.names())
      j[part][f] = {{"min", red[f].min}, {"mean", red[f].mean}, {"max", red[f].max}};
  };
  put("engine", comm::reduce_fields(world, engine.timers()));
  put("moe", comm::reduce_fields(world, engine.moe().timers));
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
  run_batch(engine, r.grid, in, o.out, r.out_keep, r.tokenizer.get(), o.m.quiet);
  if (in.errors.empty()) return 0;
  if (r.grid.is_root()) {
    for (const std::string& e : in.errors) std::fprintf(stderr, "modelone: error: %s\n", e.c_str());
    std::fprintf(stderr, "modelone: error: %zu line(s) of %s were not run (above); the others "
                 "were answered\n", in.errors.size(), o.batch.c_str());
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
