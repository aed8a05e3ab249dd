// The one place engines are made: this rank's weights (the shared ones, and the routed experts
// its ep rank holds under the placement) loaded from the model source, then the engine over the
// grid. run, the benchmarks and the tests all build engines here.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/io/model_source.h"
#include "dist/engine.h"
#include "dist/expert_placement.h"
#include "dist/grid.h"

namespace modelone {

// placement: one per layer; empty means the uniform contiguous split over the ep group.
// progress(done, total) is called as layers load.
std::unique_ptr<Engine> make_engine(const ModelSource& ms, const RankGrid& grid,
                                    const EngineOptions& opt,
                                    std::vector<ExpertPlacement> placement = {},
                                    const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace modelone
