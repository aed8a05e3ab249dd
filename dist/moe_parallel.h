// The MoE block over an expert-parallel group (DeepEP's dispatch / combine, with MPI):
//   route      top-k or hash routing of the local tokens (model/moe.h)
//   pack       layout by prefix sums: a token goes once to each rank holding any of its experts,
//              carrying the expert ids and weights for that rank; counts are exchanged
//   dispatch   one MPI_Ialltoallv of the packed rows
//   experts    received rows grouped by expert, one GEMM per expert, weighted sum per row
//   combine    rows go home along the reverse layout and are summed into the token's output
// The shared expert runs on the home rank. With overlap on, the tokens go as two micro-batches
// so one's exchange proceeds while the other computes (progress is driven by MPI_Test calls
// between expert GEMMs). With ep = 1 the exchange is a local copy: the same code path serves
// every world size.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "comm/comm.h"
#include "dist/expert_placement.h"
#include "dist/moe_payload.h"
#include "model/config.h"
#include "model/moe.h"
#include "model/weights.h"

namespace modelone {

struct MoeOptions {
  Payload dispatch = Payload::F32;
  Payload combine = Payload::F32;
  bool overlap = false;  // two micro-batches
};

struct MoeTimers {
  double route = 0, pack = 0, exchange = 0, experts = 0, combine = 0;  // seconds
  int64_t rows_sent = 0, bytes_sent = 0;
  void clear() { *this = MoeTimers{}; }
};

// One micro-batch on its way through dispatch, experts and combine. The layout (send_rows,
// recv_rows, row_token) is the handle combine reuses to send results back.
struct MoeBatch {
  int64_t t0 = 0, T = 0;               // its tokens: [t0, t0 + T) of the layer input
  std::vector<int64_t> send_rows, recv_rows;
  std::vector<int32_t> row_token;      // [rows sent] token index within the batch
  std::vector<uint8_t> send, recv;     // dispatch rows
  std::vector<uint8_t> out, back;      // combine rows: computed here, returned home
  comm::Request req;
  int64_t n_send() const;
  int64_t n_recv() const;
};

class MoeParallel {
 public:
  MoeParallel(const ModelConfig& cfg, const comm::Comm& ep, std::vector<ExpertPlacement> placement,
              MoeOptions opt);

  // y[T, D] = routed experts (wherever they live) + shared expert, for h[T, D] (the normed FFN
  // input) and ids[T]. Every rank of the ep group must call it for every layer, T = 0 included.
  void forward(int64_t layer, const LayerWeights& w, const float* h, int64_t T,
               const int32_t* ids, float* y);

  // The steps forward() composes (the ep benchmark drives them directly).
  void pack(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T, MoeBatch* b);
  void start_dispatch(MoeBatch* b);
  // Waits for the dispatch, runs the local experts (or, with w == nullptr, returns each row's
  // input scaled by its weights: an exchange-only stand-in), encodes the combine rows. progress()
  // runs between experts.
  void run_experts(int64_t layer, const LayerWeights* w, MoeBatch* b,
                   const std::function<void()>& progress);
  void start_combine(MoeBatch* b);
  void finish_combine(MoeBatch* b, float* y);  // y[t0 + i] += the batch's results

  const ExpertPlacement& placement(int64_t layer) const { return placement_[size_t(layer)]; }
  const RowCodec& codec() const { return codec_; }
  const MoeOptions& options() const { return opt_; }

  MoeTimers timers;
  // Routed (token, expert) pairs of this rank's tokens [layer][expert], and (row, expert) pairs
  // this rank computed [layer]: the inputs of --expert-stats.
  std::vector<std::vector<int64_t>> expert_tokens;
  std::vector<int64_t> computed_pairs;

 private:
  void wait(comm::Request& r);

  const ModelConfig& cfg_;
  const comm::Comm& ep_;
  std::vector<ExpertPlacement> placement_;
  MoeOptions opt_;
  RowCodec codec_;
  MoeBatch batches_[2];
  std::vector<float> xin_, yout_, acc_;
};

}  // namespace modelone
