// The MoE block over an expert-parallel group (DeepEP's dispatch / combine, with MPI):
//   route      top-k or hash routing of the local tokens (model/moe.h)
//   layout     rows per destination rank by prefix sums; a token goes once to each rank that
//              holds any of its experts, carrying the expert ids and weights for that rank
//   dispatch   one MPI_Alltoallv of packed rows
//   experts    received rows grouped by expert, one GEMM per expert, weighted sum per row
//   combine    rows go home by the reverse exchange and are summed into the token's output
// The shared expert runs on the home rank. With ep = 1 the exchange is a local copy: the same
// code path serves every world size.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/comm.h"
#include "dist/expert_placement.h"
#include "model/config.h"
#include "model/weights.h"

namespace modelone {

struct MoeTimers {
  double route = 0, pack = 0, exchange = 0, experts = 0, combine = 0;
  int64_t rows_sent = 0, bytes_sent = 0;
};

// What dispatch decided, kept so combine can send the results back the same way.
struct DispatchLayout {
  std::vector<int64_t> send_rows, recv_rows;  // per ep rank
  std::vector<int32_t> row_token;             // [rows sent] local token of each sent row
};

class MoeParallel {
 public:
  MoeParallel(const ModelConfig& cfg, const comm::Comm& ep, ExpertPlacement placement);

  // y[T, D] = routed experts (wherever they live) + shared expert, for h[T, D] (the normed FFN
  // input) and ids[T]. Every rank of the ep group must call it for every layer, T = 0 included.
  void forward(int64_t layer, const LayerWeights& w, const float* h, int64_t T,
               const int32_t* ids, float* y);

  const ExpertPlacement& placement() const { return placement_; }
  MoeTimers timers;

 private:
  const ModelConfig& cfg_;
  const comm::Comm& ep_;
  ExpertPlacement placement_;
  int64_t row_bytes_;  // D fp32 payload + k expert ids + k weights
  // Reused between layers.
  std::vector<uint8_t> send_, recv_;
  std::vector<float> out_rows_, back_;
};

}  // namespace modelone
