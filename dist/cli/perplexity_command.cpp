// `modelone perplexity`: a document (text, token ids or random tokens) scored in windows of
// --context tokens (dist/cli/perplexity.h), each window one prefill whose every position's logits
// come back a step at a time; perplexity with its standard error, per-window values in --json.
// Windows run one after another on the first dp group (the batched engine will run several).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "comm/clock.h"
#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/cli/perplexity.h"
#include "dist/cli/run_setup.h"
#include "dist/cli/validators.h"
#include "model/base/check.h"

namespace modelone {

void add_perplexity_command(CLI::App* app, PerplexityOptions* o) {
  CLI::App* p = app->add_subcommand("perplexity", "Perplexity of a document, scored in windows "
                                    "of --context tokens");
  RunOptions& r = o->run;
  add_model_options(p, &r.m);
  auto* file = p->add_option("--file", r.prompt_file, "The document as text (needs the "
                             "tokenizer.json beside the checkpoint; '-': standard input)");
  auto* ids = p->add_option("--ids-file", r.ids_file, "The document as token ids");
  auto* rnd = p->add_option("--random-prompt", r.random_prompt, "A random document of N tokens")
                  ->check(positive());
  file->excludes(ids)->excludes(rnd);
  ids->excludes(rnd);
  p->add_option("--seed", r.seed, "Seed for --random-prompt")->check(non_negative());
  p->add_option("--context", r.window, "Tokens per window")->required()
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  p->add_option("--stride", o->stride, "Tokens between window starts (default: --context, "
                "disjoint windows; less overlaps them, and every scored token then has at least "
                "context - stride tokens before it)")->check(positive());
  p->add_flag("--json", o->json, "One JSON object: perplexity, its error and every window's");
  add_kv_cache_option(p, &r.kv_cache, "KV cache storage");
  add_compute_option(p, &r.compute);
  p->add_option("--cp", r.cp, "Context-parallel ranks per sequence (default: the world)")
      ->check(CLI::Range(1, 1 << 20));
  p->add_option("--ep", r.ep, "Expert-parallel group size (default: world size)")
      ->check(CLI::Range(1, 1 << 20));
  p->add_option("--prefill-chunk", r.prefill_chunk, "Tokens per rank per forward step")
      ->check(positive());
  p->add_option("--memory-budget", r.memory_budget_gib, "GiB one rank may use")->check(positive());
}

namespace {

nlohmann::json window_json(const PplWindow& w, const PplStats& s) {
  return {{"begin", w.begin}, {"end", w.end}, {"scored", s.n}, {"nll", s.mean()},
          {"perplexity", s.perplexity()}};
}

// One window: a fresh sequence of its tokens, every position's logits scored as they come
// (at cp rank 0 of the first group; the stats stay empty elsewhere). Adds to *total.
PplStats score_window(Engine& engine, const RunSetup& r, const PplWindow& w, PplStats* total) {
  const int64_t V = r.ms.cfg.vocab_size;
  engine.reset();
  engine.reserve(w.end - w.begin);
  PplStats ws;
  PrefillOptions popt;
  popt.all_logits = true;
  popt.on_logits = [&](int64_t pos0, int64_t n, const float* rows) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = w.begin + pos0 + i + 1;  // the token this row predicts
      if (t < w.score_from || t >= w.end) continue;
      const double nll = token_nll(rows + i * V, V, r.prompt[size_t(t)]);
      ws.add(nll);
      total->add(nll);
    }
  };
  const std::vector<int32_t> ids(r.prompt.begin() + w.begin, r.prompt.begin() + w.end);
  engine.prefill(r.grid.dp_index == 0 ? ids : std::vector<int32_t>{}, popt);
  return ws;
}

}  // namespace

int perplexity_command(const PerplexityOptions& o) {
  const double t_start = comm::now();
  comm::agree(comm::Comm::world(), [&] {
    MO_REQUIRE(!o.run.prompt_file.empty() || !o.run.ids_file.empty() || o.run.random_prompt > 0,
               "perplexity needs a document: --file, --ids-file or --random-prompt");
  });
  RunSetup r;
  set_up_run(o.run, &r);
  const int64_t N = o.run.window, S = o.stride > 0 ? o.stride : N;
  std::vector<PplWindow> wins;
  comm::agree(r.grid.world, [&] { wins = perplexity_windows(int64_t(r.prompt.size()), N, S); });
  std::unique_ptr<Engine> engine = load_engine(o.run, r, t_start);
  PplStats total;
  nlohmann::json per_window = nlohmann::json::array();
  const double t0 = comm::now();
  double last_log = t0;
  for (size_t k = 0; k < wins.size(); ++k) {
    per_window.push_back(window_json(wins[k], score_window(*engine, r, wins[k], &total)));
    if (comm::now() - last_log > 2 && k + 1 < wins.size()) {
      last_log = comm::now();
      char b[160];
      std::snprintf(b, sizeof b, "perplexity: window %zu / %zu, %lld tokens scored, %.4f so far",
                    k + 1, wins.size(), (long long)total.n, total.perplexity());
      log_line(o.run.m.quiet, b);
    }
  }
  const double seconds = comm::now() - t0;
  if (!r.grid.is_root()) return 0;
  const int64_t fed = [&] {
    int64_t f = 0;
    for (const PplWindow& w : wins) f += w.end - w.begin;
    return f;
  }();
  if (o.json) {
    nlohmann::json j = {{"perplexity", total.perplexity()}, {"perplexity_error", total.error()},
                        {"nll_mean", total.mean()}, {"tokens_scored", total.n},
                        {"document_tokens", r.prompt.size()}, {"context", N}, {"stride", S},
                        {"seconds", seconds}, {"tokens_per_second", seconds > 0 ? double(fed) / seconds : 0.0},
                        {"windows", per_window}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity: %.4f +/- %.4f over %lld tokens (%zu windows of %lld, stride %lld; "
                "%.1f tokens/s)\n", total.perplexity(), total.error(), (long long)total.n,
                wins.size(), (long long)N, (long long)S, seconds > 0 ? double(fed) / seconds : 0.0);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace modelone
