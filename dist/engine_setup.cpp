#include "dist/engine_setup.h"

#include "comm/comm.h"
#include "dist/malloc_policy.h"
#include "model/base/check.h"
#include "model/blocks/engram.h"
#include "model/blocks/weight_packing.h"
#include "model/kernels/linear.h"
#include "model/io/engram_tables.h"
#include "model/config/model_info.h"

namespace modelone {

std::unique_ptr<Engine> make_engine(const ModelSource& ms, const RankGrid& grid,
                                    const EngineOptions& opt,
                                    std::vector<ExpertPlacement> placement,
                                    const std::function<void(int64_t, int64_t)>& progress) {
  const ModelConfig& cfg = ms.cfg;
  if (placement.empty()) placement = ExpertPlacement::uniform(cfg.n_experts, grid.ep, cfg.num_layers);
  const int r = grid.ep_comm.rank();
  // This rank's share (its experts, its part of the files) can fail here alone: the ranks agree
  // on errors before the collectives below (the MoE and Engram set-up), or they would wait there.
  ModelWeights w;
  std::vector<int32_t> cmap;
  std::unique_ptr<EngramTables> tables;
  const bool with_engram = cfg.engram.enabled() && opt.engram.enabled;
  comm::agree(grid.world, [&] {
    w = load_weights(
        cfg, *ms.weights, [&](int64_t l, int64_t e) { return placement[size_t(l)].holds(r, e); },
        progress);
    // The bf16 path's products read their weights in the panel kernel's layout.
    if (compute_mode() == Compute::BF16 && opt.repack != Repack::None) pack_expert_panels(w);
    if (compute_mode() == Compute::BF16 && opt.repack == Repack::All) pack_dense_panels(cfg, w);
    if (!with_engram) return;
    cmap = ms.synthetic ? synthetic_compression_map(cfg.seed, cfg.vocab_size, cfg.engram.compressed_vocab)
                        : read_compression_map(ms.dir, cfg);
    tables = std::make_unique<EngramTables>(
        ms.synthetic ? EngramTables::synthetic(cfg)
                     : EngramTables::from_checkpoint(cfg, *ms.checkpoint, engram_table_rows(cfg)));
  });
  keep_freed_buffers();  // step buffers stay in the heap from here (dist/malloc_policy.cpp)
  std::unique_ptr<EngramStore> engram;
  if (with_engram)
    engram = std::make_unique<EngramStore>(cfg, grid.world, opt.engram, std::move(cmap), *tables, nullptr);
  return std::make_unique<Engine>(cfg, grid, std::move(w), std::move(placement), opt,
                                  std::move(engram));
}

}  // namespace modelone
