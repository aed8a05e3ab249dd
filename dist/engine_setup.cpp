#include "dist/engine_setup.h"

#include "model/check.h"
#include "model/engram.h"
#include "model/engram_tables.h"
#include "model/model_info.h"

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
    if (ms.synthetic) {
      engram = std::make_unique<EngramStore>(
          cfg, grid.world, opt.engram,
          synthetic_compression_map(cfg.seed, cfg.vocab_size, cfg.engram.compressed_vocab),
          EngramTables::synthetic(cfg), nullptr);
    } else {
      engram = std::make_unique<EngramStore>(
          cfg, grid.world, opt.engram, read_compression_map(ms.dir, cfg),
          EngramTables::from_checkpoint(cfg, *ms.checkpoint, engram_table_rows(cfg)), nullptr);
    }
  }
  return std::make_unique<Engine>(cfg, grid, std::move(w), std::move(placement), opt,
                                  std::move(engram));
}

}  // namespace modelone
