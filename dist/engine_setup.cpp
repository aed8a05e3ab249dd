#include "dist/engine_setup.h"

namespace modelone {

std::unique_ptr<Engine> make_engine(const ModelSource& ms, const RankGrid& grid,
                                    const EngineOptions& opt,
                                    std::vector<ExpertPlacement> placement,
                                    const std::function<void(int64_t, int64_t)>& progress) {
  const ModelConfig& cfg = ms.cfg;
  if (placement.empty()) placement = ExpertPlacement::uniform(cfg.n_experts, grid.ep, cfg.num_layers);
  const int r = grid.ep_comm.rank();
  ModelWeights w = load_weights(
      cfg, *ms.weights, [&](int64_t l, int64_t e) { return placement[size_t(l)].holds(r, e); },
      progress);
  return std::make_unique<Engine>(cfg, grid, std::move(w), std::move(placement), opt);
}

}  // namespace modelone
