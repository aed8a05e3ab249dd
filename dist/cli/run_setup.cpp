// Setting up a run: see run_setup.h.
#include "dist/cli/run_setup.h"

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
#include "dist/generation.h"
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

namespace {

// The flag that gave a text prompt, for errors (perplexity calls its prompt file --file).
const char* text_flag(const RunOptions& o) {
  if (o.prompt_file.empty()) return "--prompt";
  return o.window > 0 ? "--file" : "--prompt-file";
}

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
  // Stop strings, batch jobs and the server decide from text on every rank; otherwise only rank 0
  // prints it.
  const bool everywhere = !o.sample.stop.empty() || !o.batch.empty() || o.serving;
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
  // A document read in windows (perplexity) may be longer than the model's context.
  const int64_t positions = o.window > 0 ? int64_t(1) << 30 : cfg.max_position_embeddings;
  const int64_t bound = std::min<int64_t>(positions * per_token + 4096, int64_t(1) << 30);
  return read_input_once(world, text ? o.prompt_file : o.ids_file,
                         text ? text_flag(o) : "--ids-file", bound);
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
      fail(text_flag(o), ": ", e.what());
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
    const char* flag = text_flag(o);
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
    check_positions(o.window > 0 ? std::min(o.window, o.random_prompt) : o.random_prompt);
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int32_t> d(0, int32_t(cfg.vocab_size - 1));
    for (int64_t i = 0; i < o.random_prompt; ++i) prompt.push_back(d(rng));
  }
  MO_REQUIRE(!prompt.empty(), "no prompt: give --ids, --ids-file, --random-prompt, --prompt or "
             "--prompt-file");
  for (auto id : prompt)
    MO_REQUIRE(id < cfg.vocab_size, "token id ", id, " is outside the vocabulary [0, ",
               cfg.vocab_size, ") of ", cfg.name);
  check_positions(o.window > 0 ? std::min<int64_t>(o.window, int64_t(prompt.size())) : int64_t(prompt.size()));
  return prompt;
}



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

}  // namespace

void set_up_run(const RunOptions& o, RunSetup* r) {
  comm::Comm world = comm::Comm::world();
  // A batch job serves many sequences: by default each rank runs its own (cp = 1).
  const int cp = o.cp > 0 ? o.cp : o.batch.empty() && !o.serving ? 0 : 1;
  comm::agree(world, [&] { r->grid = RankGrid::make(cp, o.ep); });
  const RankGrid& grid = r->grid;
  comm::agree(world, [&] {
    r->threads = grid.threads(o.m.threads);
    // Serving, world rank 0 also runs the HTTP threads, which write every stream's events: by
    // default its engine leaves them a core (tiny at 32 streams on 2 cores: 15-25% more tokens/s
    // than an engine on both, whose second thread spins between regions).
    if (o.serving && grid.is_root() && o.m.threads == 0 && env_threads() == 0 && r->threads > 1)
      r->threads -= 1;
  });
  set_compute_threads(r->threads);
  comm::agree(grid.world, [&] {
    set_compute(resolve_compute(compute_choices().parse(o.compute)));
    r->ms = resolve_model(o.m.model, o.m.all_sets());
    for (const std::string& w : r->ms.warnings) log_line(o.m.quiet, "warning: " + w);
    r->kv = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), r->ms.cfg, compute_mode());
    r->tokenizer = find_tokenizer(r->ms, o, text_flag(o),
                                  grid.is_root());
    r->gen = generation_spec(o, r->ms.cfg.vocab_size, r->tokenizer.get());
  });
  if (!o.batch.empty()) {
    set_up_batch(o, r);
  } else if (o.serving) {  // the weights must fit; each request's caches are checked as it comes
    comm::agree(grid.world, [&] { check_memory(r->ms, 1, r->kv, grid, o); });
  } else {
    const std::string file_text = read_prompt_file(o, r->ms.cfg, r->tokenizer.get(), grid.world);
    const std::vector<int32_t> text_ids = encode_once(o, r->tokenizer.get(), file_text, grid.world);
    comm::agree(grid.world, [&] {
      r->prompt = make_prompt(o, r->ms.cfg, text_ids, file_text);
      const int64_t n = int64_t(r->prompt.size());
      check_memory(r->ms, (o.window > 0 ? std::min(o.window, n) : n) + o.generate, r->kv, grid, o);
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
  bool pinned = false;
  comm::agree(grid.world, [&] {
    pinned = pin_if_oversubscribed(grid.world, r->threads);
    binding = gather_binding(grid.world, r->threads);
  });
  for (const std::string& line : binding) log_line(o.m.quiet, line);
  if (pinned)
    log_line(o.m.quiet, "binding: the launcher bound no rank and a node's threads share its cpus evenly, more "
                        "than one a cpu: ranks pinned round-robin (MODELONE_PIN=off leaves them to the OS)");
}

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

}  // namespace modelone
