// `modelone perplexity`: a document (text, token ids or random tokens) scored in windows of
// --context tokens (dist/cli/perplexity.h), each window one prefill whose every position's logits
// come back a step at a time; perplexity with its standard error, per-window values in --json.
// The dp groups score windows side by side (window k on group k mod dp, all groups stepping
// together): with --cp 1, each rank its own window.
#include <algorithm>
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

// One window on this dp group (none: the group steps along empty): a fresh sequence of its
// tokens, every position's logits scored as they come (at the group's cp rank 0; the stats stay
// empty elsewhere).
PplStats score_window(Engine& engine, const RunSetup& r, const PplWindow* w) {
  const int64_t V = r.ms.cfg.vocab_size;
  engine.reset();
  if (w) engine.reserve(w->end - w->begin);
  PplStats ws;
  PrefillOptions popt;
  popt.all_logits = w != nullptr;
  popt.on_logits = [&](int64_t pos0, int64_t n, const float* rows) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = w->begin + pos0 + i + 1;  // the token this row predicts
      if (t < w->score_from || t >= w->end) continue;
      ws.add(token_nll(rows + i * V, V, r.prompt[size_t(t)]));
    }
  };
  std::vector<int32_t> ids;
  if (w) ids.assign(r.prompt.begin() + w->begin, r.prompt.begin() + w->end);
  engine.prefill(ids, popt);
  return ws;
}

// Every window's (sum, sum of squares, count) on every rank: each was scored at one rank.
std::vector<PplStats> share_windows(const comm::Comm& world, const std::vector<PplStats>& mine) {
  std::vector<double> v(mine.size() * 3);
  for (size_t k = 0; k < mine.size(); ++k)
    v[3 * k] = mine[k].sum, v[3 * k + 1] = mine[k].sum2, v[3 * k + 2] = double(mine[k].n);
  if (!v.empty()) world.allreduce(v.data(), int64_t(v.size()), comm::Op::Sum);
  std::vector<PplStats> all(mine.size());
  for (size_t k = 0; k < mine.size(); ++k) all[k] = {v[3 * k], v[3 * k + 1], int64_t(v[3 * k + 2])};
  return all;
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
  std::vector<PplStats> mine(wins.size());
  const size_t G = size_t(r.grid.dp);
  const double t0 = comm::now();
  double last_log = t0;
  for (size_t k0 = 0; k0 < wins.size(); k0 += G) {
    const size_t k = k0 + size_t(r.grid.dp_index);
    const PplStats ws = score_window(*engine, r, k < wins.size() ? &wins[k] : nullptr);
    if (k < wins.size()) mine[k] = ws;
    if (comm::now() - last_log > 2 && k0 + G < wins.size()) {
      last_log = comm::now();
      char b[160];
      std::snprintf(b, sizeof b, "perplexity: window %zu / %zu", std::min(k0 + G, wins.size()), wins.size());
      log_line(o.run.m.quiet, b);
    }
  }
  const double seconds = comm::now() - t0;
  const std::vector<PplStats> per = share_windows(r.grid.world, mine);
  PplStats total;
  nlohmann::json per_window = nlohmann::json::array();
  for (size_t k = 0; k < per.size(); ++k) {
    total.sum += per[k].sum, total.sum2 += per[k].sum2, total.n += per[k].n;
    per_window.push_back(window_json(wins[k], per[k]));
  }
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
