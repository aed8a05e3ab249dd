// `modelone plan-experts`: turn recorded expert loads into a balanced placement with redundant
// copies of the hottest experts, and report max / mean tokens per rank before and after.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/cli/validators.h"
#include "dist/eplb.h"
#include "model/base/check.h"

namespace modelone {

void add_plan_experts_command(CLI::App* app, PlanExpertsOptions* o) {
  CLI::App* p = app->add_subcommand("plan-experts",
                                    "Balance experts over ranks from --expert-stats (EPLB)");
  p->add_option("--stats", o->stats, "Stats file written by `modelone run --expert-stats`")
      ->required();
  p->add_option("--out", o->out, "Placement file to write (for `run --expert-placement`)")
      ->required();
  p->add_option("--ep", o->ep, "Expert-parallel ranks (default: the stats' ep)")
      ->check(count_in(1, 65536));
  p->add_option("--redundant", o->redundant, "Extra expert copies per layer (default: ep)")
      ->check(count_in(0, 1 << 20));
  p->add_flag("--json", o->json, "One JSON object per layer");
}

namespace {
std::pair<double, double> max_mean(const std::vector<double>& v) {
  const double mx = *std::max_element(v.begin(), v.end());
  return {mx, std::accumulate(v.begin(), v.end(), 0.0) / double(v.size())};
}
}  // namespace

int plan_experts_command(const PlanExpertsOptions& o) {
  ExpertStats s;
  int ep = 0;
  int64_t redundant = 0;
  std::vector<ExpertPlacement> plan;
  comm::agree(comm::Comm::world(), [&] {
    s = read_expert_stats(o.stats);
    ep = o.ep > 0 ? o.ep : s.ep;
    redundant = o.redundant >= 0 ? o.redundant : ep;
    const int64_t E = int64_t(s.tokens_per_expert[0].size());
    MO_REQUIRE(ep >= 1 && ep <= E + redundant, "--ep ", ep, " must be in [1, ", E + redundant, "]");
    plan = plan_placement(s.tokens_per_expert, ep, redundant);
    if (comm::Comm::world().rank() == 0) write_placement(o.out, plan);
  });
  if (comm::Comm::world().rank() != 0) return 0;
  const int64_t E = int64_t(s.tokens_per_expert[0].size()), L = int64_t(plan.size());
  const auto before = rank_loads(s.tokens_per_expert, ExpertPlacement::uniform(E, ep, L));
  const auto after = rank_loads(s.tokens_per_expert, plan);
  for (int64_t l = 0; l < L; ++l) {
    const auto [b_max, b_mean] = max_mean(before[size_t(l)]);
    const auto [a_max, a_mean] = max_mean(after[size_t(l)]);
    if (o.json) {
      nlohmann::json j = {{"layer", l},          {"ep", ep},
                          {"redundant", redundant}, {"before_max", b_max},
                          {"before_mean", b_mean},  {"before_max_over_mean", b_max / std::max(b_mean, 1e-9)},
                          {"after_max", a_max},     {"after_max_over_mean", a_max / std::max(a_mean, 1e-9)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("layer %lld: tokens per rank max/mean %.0f/%.1f = %.2f before, %.0f/%.1f = %.2f "
                  "after (ep %d, %lld redundant copies)\n",
                  (long long)l, b_max, b_mean, b_max / std::max(b_mean, 1e-9), a_max, a_mean,
                  a_max / std::max(a_mean, 1e-9), ep, (long long)redundant);
    }
  }
  return 0;
}

}  // namespace modelone
