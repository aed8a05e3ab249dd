// `modelone inspect`: the resolved config, parameter counts (total and active per token), the
// tensor table, and the memory a rank needs for a context.
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/cli/validators.h"
#include "model/io/model_source.h"
#include "dist/grid.h"
#include "model/base/check.h"
#include "model/cache/layer_cache.h"
#include "model/config/model_info.h"
#include "model/io/weight_sizes.h"
#include "model/io/tensor_table.h"

namespace modelone {

void add_inspect_command(CLI::App* app, InspectOptions* o) {
  CLI::App* ins = app->add_subcommand("inspect", "Show a model's config, sizes and tensors");
  add_model_options(ins, &o->m);
  ins->add_option("--context", o->context, "Context length for the memory estimate (default 4096, "
                  "or the model's max_position_embeddings if shorter)")
      ->check(positive());
  add_kv_cache_option(ins, &o->kv_cache, "KV cache storage for the estimate (auto as run chooses "
                      "it on this CPU)");
  // The same bound as the ranks-needed search (2^16 ranks).
  ins->add_option("--cp", o->cp, "Context-parallel ranks sharing the compressed caches")
      ->check(count_in(1, 65536));
  ins->add_option("--ep", o->ep, "Expert-parallel ranks sharing the routed experts")
      ->check(count_in(1, 65536));
  ins->add_option("--mem-per-rank", o->mem_per_rank_gib,
                  "Per-rank memory budget in GiB for the ranks-needed estimate (default 24)")
      ->check(positive())->check(CLI::Range(0.0, 1048576.0));
  ins->add_flag("--tensors", o->tensors, "List every tensor pattern with its role and shape");
  ins->add_flag("--json", o->json, "Print one JSON object");
}

namespace {
double gib(int64_t b) { return double(b) / double(1ll << 30); }
std::string human(int64_t n) {
  char b[32];
  if (n >= 1000000000) std::snprintf(b, sizeof b, "%.2fB", double(n) / 1e9);
  else if (n >= 1000000) std::snprintf(b, sizeof b, "%.2fM", double(n) / 1e6);
  else std::snprintf(b, sizeof b, "%lld", (long long)n);
  return b;
}
void print_shape(const ModelConfig& c, int64_t n_sliding, int64_t n_csa, int64_t n_hca,
                 int64_t n_hash) {
  if (!c.v41()) {
    std::printf("shape       vocab %lld, hidden %lld, %lld layers (%lld sliding, %lld CSA, %lld HCA; "
                "%lld hash-routed)\n",
                (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_layers,
                (long long)n_sliding, (long long)n_csa, (long long)n_hca, (long long)n_hash);
    std::printf("attention   %lld heads x %lld (rope %lld), q_lora %lld, window %lld, CSA rate %lld "
                "top-%lld (%lld x %lld indexer), HCA rate %lld\n",
                (long long)c.num_heads, (long long)c.head_dim, (long long)c.rope_dim,
                (long long)c.q_lora_rank, (long long)c.sliding_window, (long long)c.csa_rate,
                (long long)c.index_topk, (long long)c.index_n_heads, (long long)c.index_head_dim,
                (long long)c.hca_rate);
    return;
  }
  // V4.1: layers by compress ratio, and who reads whose cache and top-k.
  std::map<int64_t, int64_t> by_ratio;
  for (int64_t r : c.shared.ratio) ++by_ratio[r];
  std::string ratios;
  for (auto& [r, n] : by_ratio)
    ratios += (ratios.empty() ? "" : ", ") + std::to_string(n) + (r ? " ratio-" + std::to_string(r) : " window-only");
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
  };
  std::printf("shape       vocab %lld, hidden %lld, %lld layers (V4.1: %s; %lld hash-routed)\n",
              (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_layers,
              ratios.c_str(), (long long)n_hash);
  std::printf("attention   %lld heads x %lld (rope %lld), q_lora %lld, window %lld; kv sources %s, "
              "index sources %s (%lld x %lld indexer, top-%lld)", (long long)c.num_heads,
              (long long)c.head_dim, (long long)c.rope_dim, (long long)c.q_lora_rank,
              (long long)c.sliding_window, list(c.shared.kv_sources).c_str(),
              list(c.shared.index_sources).c_str(), (long long)c.index_n_heads,
              (long long)c.index_head_dim, (long long)c.index_topk);
  if (c.shared.candidate_source >= 0)
    std::printf(", candidate blocks from layer %lld (%lld of %lld entries)",
                (long long)c.shared.candidate_source, (long long)c.shared.candidate_topk_blocks,
                (long long)c.shared.candidate_block_size);
  std::printf("; fake quantization %s\n", c.fake_quant ? "on" : "off");
}

// V4.1's compressed caches per token of context: one store per kv source, whatever reads it.
void print_shared_caches(const ModelConfig& c, DType kv) {
  const int64_t n = int64_t(1) << 20;
  const CacheBytes b = cache_bytes_for(c, kv, n);
  std::printf("shared      compressed cache per token (%s): entries %.0f B + indexer keys %.0f B = "
              "%.0f B (V4.1's FP4 entries and keys as trained: %.0f B)\n",
              kv_cache_name(kv), double(b.entries) / double(n), double(b.index_keys) / double(n),
              double(b.entries + b.index_keys) / double(n), trained_cache_bytes_per_token(c));
}

// How many ranks the context needs at 24, 48 and 96 GiB per rank.
void print_budgets(const ModelConfig& c, int64_t context, const WeightBytes& stored,
                   const std::string& stored_as, const WeightBytes& release, DType kv) {
  std::string a, b;
  for (int g : {24, 48, 96}) {
    const int64_t budget = int64_t(g) << 30;
    auto one = [&](const WeightBytes& w) {
      const int r = ranks_needed(c, context, w, kv, budget);
      return r > 0 ? std::to_string(r) : std::string("-");
    };
    a += (a.empty() ? "" : " / ") + one(stored);
    b += (b.empty() ? "" : " / ") + one(release);
  }
  std::printf("budgets     %lld tokens at 24 / 48 / 96 GiB per rank need %s ranks (%s weights), "
              "%s in the release format\n",
              (long long)context, a.c_str(), stored_as.c_str(), b.c_str());
}

}  // namespace

namespace {

// Everything inspect prints, computed once.
struct Sizing {
  ParamCounts pc;
  DType kv = DType::BF16;
  // Weights as this model holds them: a checkpoint's stored dtypes (FP8, FP4 packed, ...), a
  // preset's synthetic dtype. For planning, also DeepSeek's release format and plain bf16.
  WeightBytes stored, release, bf16;
  std::string stored_as;
  RankMemory mem;
  int64_t budget = 0;
  int need = 0;
  int64_t n_sliding = 0, n_csa = 0, n_hca = 0, n_hash = 0;
  // Tensor patterns with how many instances each has, and the last one's shape.
  std::map<const TensorSpec*, std::pair<int64_t, std::vector<int64_t>>> patterns;
};
constexpr int kEps[] = {1, 8, 16, 64};

Sizing size_up(const InspectOptions& o, const ModelSource& ms) {
  const ModelConfig& c = ms.cfg;
  Sizing z;
  z.pc = count_params(c);
  z.kv = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), c, default_compute());
  z.stored = ms.checkpoint ? checkpoint_weight_bytes(c, *ms.checkpoint)
                           : uniform_weight_bytes(c, c.weight_dtype);
  z.stored_as = ms.checkpoint ? "as stored" : std::string(dtype_name(c.weight_dtype));
  z.release = release_weight_bytes(c);
  z.bf16 = uniform_weight_bytes(c, DType::BF16);
  z.mem = rank_memory(c, o.context, z.stored, z.kv, o.cp, o.ep);
  z.budget = int64_t(o.mem_per_rank_gib * double(1ll << 30));
  z.need = ranks_needed(c, o.context, z.stored, z.kv, z.budget);
  for (auto k : c.attn) {
    z.n_sliding += k == AttnKind::Sliding;
    z.n_csa += k == AttnKind::CSA;
    z.n_hca += k == AttnKind::HCA;
  }
  for (auto k : c.mlp) z.n_hash += k == MlpKind::HashMoE;
  for (auto& t : enumerate_tensors(c)) {
    auto& e = z.patterns[t.spec];
    ++e.first;
    e.second = t.shape;
  }
  return z;
}

nlohmann::json inspect_json(const InspectOptions& o, const ModelSource& ms, const Sizing& z) {
  const ModelConfig& c = ms.cfg;
  nlohmann::json j;
  j["model"] = c.name;
  j["source"] = ms.description;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_layers"] = c.num_layers;
  j["layers"] = {{"sliding", z.n_sliding}, {"csa", z.n_csa}, {"hca", z.n_hca}, {"hash_moe", z.n_hash}};
  for (auto k : c.attn) j["layer_types"].push_back(attn_kind_name(k));
  j["num_heads"] = c.num_heads;
  j["head_dim"] = c.head_dim;
  j["rope_dim"] = c.rope_dim;
  j["n_routed_experts"] = c.n_experts;
  j["num_experts_per_tok"] = c.top_k;
  j["params_total"] = z.pc.total;
  j["params_active"] = z.pc.active;
  j["params_active_no_embedding"] = z.pc.active_no_embedding;
  j["params_routed_experts"] = z.pc.routed_experts;
  j["context"] = o.context;
  j["cp"] = o.cp;
  j["ep"] = o.ep;
  j["rank_weight_bytes"] = z.mem.weight_bytes;
  j["rank_window_bytes"] = z.mem.window_bytes;
  j["rank_entry_bytes"] = z.mem.entry_bytes;
  j["rank_index_key_bytes"] = z.mem.index_bytes;
  j["rank_kv_cache_bytes"] = z.mem.cache_bytes();
  j["rank_engram_table_bytes"] = z.mem.engram_bytes;
  j["rank_total_bytes"] = z.mem.total();
  j["mem_per_rank_bytes"] = z.budget;
  j["weights_as"] = z.stored_as;
  for (int e : kEps) {
    j["rank_weight_bytes_by_ep"]["ep"].push_back(e);
    j["rank_weight_bytes_by_ep"]["stored"].push_back(z.stored.per_rank(c, e));
    j["rank_weight_bytes_by_ep"]["release"].push_back(z.release.per_rank(c, e));
    j["rank_weight_bytes_by_ep"]["bf16"].push_back(z.bf16.per_rank(c, e));
  }
  j["ranks_needed"] = z.need;
  for (int g : {24, 48, 96}) {
    j["ranks_needed_by_budget"]["gib"].push_back(g);
    j["ranks_needed_by_budget"]["stored"].push_back(ranks_needed(c, o.context, z.stored, z.kv, int64_t(g) << 30));
    j["ranks_needed_by_budget"]["release"].push_back(ranks_needed(c, o.context, z.release, z.kv, int64_t(g) << 30));
  }
  if (c.v41()) {
    const CacheBytes cb = cache_bytes_for(c, z.kv, o.context);
    j["v41"] = {{"compress_ratios", c.shared.ratio}, {"kv_sources", c.shared.kv_sources},
                {"index_sources", c.shared.index_sources},
                {"candidate_source", c.shared.candidate_source},
                {"fake_quant", c.fake_quant},
                {"cache_bytes_per_token", double(cb.entries + cb.index_keys) / double(o.context)},
                {"trained_cache_bytes_per_token", trained_cache_bytes_per_token(c)}};
  }
  if (o.tensors)
    for (auto& [spec, e] : z.patterns)
      j["tensors"].push_back({{"pattern", spec->pattern}, {"role", spec->role},
                              {"count", e.first}, {"shape", e.second}});
  return j;
}

// The memory and weights lines: the busiest rank at the given layout, then weights per rank by ep.
void print_memory(const InspectOptions& o, const ModelConfig& c, const Sizing& z) {
  const RankMemory& mem = z.mem;
  std::printf("memory      busiest rank at cp %d, ep %d for %lld tokens (%s cache): weights %.2f GiB "
              "(%s), raw window %.1f MiB, compressed entries %.3f GiB, indexer keys %.3f GiB, "
              "Engram tables %.2f GiB, total %.2f GiB\n",
              o.cp, o.ep, (long long)o.context, kv_cache_name(z.kv), gib(mem.weight_bytes),
              z.stored_as.c_str(),
              double(mem.window_bytes) / double(1 << 20), gib(mem.entry_bytes),
              gib(mem.index_bytes), gib(mem.engram_bytes), gib(mem.total()));
  if (c.v41()) print_shared_caches(c, z.kv);
  auto per_ep = [&](const WeightBytes& w) {
    std::string r;
    for (int e : kEps) {
      char b[32];
      std::snprintf(b, sizeof b, "%s%.1f", r.empty() ? "" : " / ", gib(w.per_rank(c, e)));
      r += b;
    }
    return r;
  };
  std::printf("weights     GiB per rank at ep 1 / 8 / 16 / 64: %s %s; release format (FP8 "
              "projections, FP4 experts) %s; bf16 %s\n",
              z.stored_as.c_str(), per_ep(z.stored).c_str(), per_ep(z.release).c_str(),
              per_ep(z.bf16).c_str());
}

// The Engram tables and the ranks a context needs at the budget.
void print_engram_and_ranks(const InspectOptions& o, const ModelConfig& c, const Sizing& z) {
  if (c.engram.enabled()) {
    std::string r, layers;
    for (int64_t n : engram_table_rows(c)) r += (r.empty() ? "" : " + ") + human(n);
    for (int64_t l : c.engram.layers) layers += (layers.empty() ? "" : ",") + std::to_string(l);
    std::printf("engram      layers %s, %s rows of %lld x %s, %.2f GiB in all; %.2f GiB on the "
                "busiest of %d ranks\n",
                layers.c_str(), r.c_str(), (long long)c.engram.head_dim,
                std::string(dtype_name(c.engram.table_dtype)).c_str(),
                gib(engram_share_bytes(c, 1)), gib(z.mem.engram_bytes), std::max(o.cp, o.ep));
  }
  if (z.need > 0) {
    const RankMemory at = rank_memory(c, o.context, z.stored, z.kv, z.need, z.need);
    std::printf("ranks       %lld tokens fit %.1f GiB per rank from %d ranks (cp = ep = %d: weights "
                "%.2f GiB + caches %.3f GiB + Engram %.2f GiB on the busiest rank)\n",
                (long long)o.context, o.mem_per_rank_gib, z.need, z.need, gib(at.weight_bytes),
                gib(at.cache_bytes()), gib(at.engram_bytes));
  } else {
    std::printf("ranks       %lld tokens do not fit %.1f GiB per rank at any rank count up to "
                "65536\n", (long long)o.context, o.mem_per_rank_gib);
  }
  print_budgets(c, o.context, z.stored, z.stored_as, z.release, z.kv);
}

void print_inspect(const InspectOptions& o, const ModelSource& ms, const Sizing& z) {
  const ModelConfig& c = ms.cfg;
  std::printf("model       %s (%s)\n", c.name.c_str(), ms.description.c_str());
  print_shape(c, z.n_sliding, z.n_csa, z.n_hca, z.n_hash);
  std::printf("moe         %lld routed experts top-%lld (+%lld shared), intermediate %lld\n",
              (long long)c.n_experts, (long long)c.top_k, (long long)c.n_shared_experts,
              (long long)c.moe_inter);
  std::printf("params      total %s, active per token %s (%s without embedding and head)\n",
              human(z.pc.total).c_str(), human(z.pc.active).c_str(),
              human(z.pc.active_no_embedding).c_str());
  print_memory(o, c, z);
  print_engram_and_ranks(o, c, z);
  if (o.tensors) {
    std::printf("\n%-58s %-40s %6s  %s\n", "tensor", "role", "count", "shape");
    for (auto& [spec, e] : z.patterns)
      std::printf("%-58s %-40s %6lld  %s\n", spec->pattern, spec->role, (long long)e.first,
                  shape_str(e.second).c_str());
  }
}

}  // namespace

int inspect_command(const InspectOptions& in) {
  InspectOptions o = in;
  ModelSource ms;
  comm::agree(comm::Comm::world(), [&] {
    check_layout(o.cp, o.ep);  // as run lays them out
    ms = resolve_model(o.m.model, o.m.all_sets());
    MO_REQUIRE(o.ep <= std::max<int64_t>(1, ms.cfg.n_experts), "--ep ", o.ep, " is more than the ",
               ms.cfg.n_experts, " routed experts of ", ms.cfg.name, ": ranks past them hold none");
    // Default: 4096 tokens, or the model's whole context when that is shorter.
    if (o.context == 0) o.context = std::min<int64_t>(4096, ms.cfg.max_position_embeddings);
    MO_REQUIRE(o.context >= 1 && o.context <= ms.cfg.max_position_embeddings, "--context ",
               o.context, " is outside [1, ", ms.cfg.max_position_embeddings,
               "] (max_position_embeddings of ", ms.cfg.name, ")");
    // A table share that cannot fit is refused here, before anything would allocate it.
    const int owners = std::max(o.cp, o.ep);
    const int64_t share = engram_share_bytes(ms.cfg, owners);
    const double budget_gib = o.mem_per_rank_gib;
    MO_REQUIRE(double(share) <= budget_gib * double(1ll << 30), "the Engram tables need ",
               double(share) / double(1ll << 30), " GiB on the busiest of ", owners,
               " ranks, more than --mem-per-rank ", budget_gib, " GiB; spread them over more ranks");
  });
  if (comm::Comm::world().rank() != 0) return 0;
  const Sizing z = size_up(o, ms);
  if (o.json) std::printf("%s\n", inspect_json(o, ms, z).dump().c_str());
  else print_inspect(o, ms, z);
  return 0;
}

}  // namespace modelone
