#include "dist/engine_setup.h"

#include "model/check.h"
#include "model/engram.h"

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
  std::unique_ptr<EngramStore> engram;
  if (cfg.engram.enabled() && opt.engram.enabled) {
    // Checkpoint tables (fp8 rows + E8M0 scales) and their compression map file come next;
    // today the tables and the map are synthetic.
    MO_REQUIRE(ms.synthetic, ms.description,
               ": Engram tables from a checkpoint are not supported yet (run with --engram off)");
    engram = std::make_unique<EngramStore>(
        cfg, grid.world, opt.engram,
        synthetic_compression_map(cfg.seed, cfg.vocab_size, cfg.engram.compressed_vocab), nullptr);
  }
  return std::make_unique<Engine>(cfg, grid, std::move(w), std::move(placement), opt,
                                  std::move(engram));
}

}  // namespace modelone
