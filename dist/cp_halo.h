// The halo of a context-parallel prefill step. A segment that does not continue its rank's own
// cache (every block but the first, under cp > 1) rebuilds the cache state at its first position
// p from rows other ranks made:
//   kv    the last sliding_window - 1 KV rows before p (its queries' window keys);
//   comp  the compressor's raw rows of the open window and (CSA) of the window before it;
//   idx   the same for the indexer's compressor (CSA).
// A row of position q comes from q's owner in this step, or, for q before the step, from the
// rank whose cache state stands at the step's start (the previous tail), out of its ring and
// compressor states. Both sides derive the plan from the layout, so no counts are exchanged.
// Sends and receives are posted right after the keys are projected and waited for after the
// queries are: the query projections overlap the transfer.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/comm.h"
#include "comm/counters.h"
#include "dist/cp_layout.h"
#include "model/blocks/attention.h"
#include "model/config/config.h"
#include "model/cache/layer_cache.h"

namespace modelone {

// The rows a layer's restart needs besides the window's: its compressor's raw rows (kv | gate,
// comp_width floats) of the open window, and of the one before it when windows overlap (CSA), and
// the same for the indexer's compressor (CSA). Layers of one shape share a plan.
struct HaloShape {
  int64_t comp_width = 0, rate = 0, idx_width = 0;
  bool overlap = false;
  bool operator==(const HaloShape& o) const {
    return comp_width == o.comp_width && rate == o.rate && idx_width == o.idx_width && overlap == o.overlap;
  }
};
HaloShape halo_shape(const ModelConfig& cfg, int64_t layer);

class CpHalo {
 public:
  // cache_end[r]: the position cp rank r's cache state stands at before the step.
  void plan(const ModelConfig& cfg, const StepLayout& L, const std::vector<int64_t>& cache_end,
            int me);
  // Packs this rank's rows for the layer and posts the transfers.
  void start(const comm::Comm& cp, int64_t layer, const AttnProj& p, const LayerCache& cache,
             comm::Counters* counters);
  // Moves the transfers along between compute kernels (Open MPI progresses only inside MPI
  // calls): a receiver's progress call is where a large message's single copy happens.
  void progress() { reqs_.progress(); }
  void finish(comm::Counters* counters);
  // Before own segment i runs: when it does not continue the cache, restart the cache at the
  // segment's start from the halo rows.
  void restart(int64_t i, LayerCache& cache) const;

 private:
  enum : uint8_t { kKv = 0, kComp = 1, kIdx = 2 };
  struct Item {
    uint8_t kind;
    int32_t seg;  // the receiver's segment
    int64_t pos;
  };
  struct SegNeed {
    bool restart = false;
    int64_t pos = 0;
    int64_t from[3] = {0, 0, 0};  // first position per row kind; rows [from, pos)
  };
  struct KindPlan {
    std::vector<std::vector<Item>> send, recv;  // [cp rank]
    std::vector<SegNeed> mine;                  // per own segment
    int64_t width[3] = {0, 0, 0};               // floats per row of each kind
  };

  const KindPlan& kp() const { return plans_[size_t(cur_)]; }

  StepLayout L_;
  int me_ = 0;
  std::vector<HaloShape> shapes_;    // the distinct shapes of the model's layers
  std::vector<int> layer_shape_;     // [layer] -> index into shapes_ / plans_
  std::vector<KindPlan> plans_;
  int cur_ = 0;
  std::vector<std::vector<float>> sendbuf_, recvbuf_;
  comm::RequestSet reqs_;
  // Unpacked rows per own segment and kind: [from .. pos) rows of width[kind].
  std::vector<std::vector<float>> rows_[3];
};

}  // namespace modelone
