// The MoE block over an expert-parallel group (DeepEP's dispatch / combine, on CPUs):
//   route      top-k or hash routing of the local tokens (model/blocks/moe.h)
//   layout     rows per destination by prefix sums: a token goes once to each rank holding any of
//              its experts, carrying the expert ids and weights for that rank
//   dispatch   MPI: counts exchange, then one MPI_Ialltoallv of the packed rows.
//              shm (ep group on one node): rows are packed into this rank's shared segment and
//              the expert ranks read them in place, no copy in between.
//   experts    received rows grouped by expert, one GEMM per expert, weighted sum per row
//   combine    MPI: rows go home by the reverse exchange. shm: expert ranks write each result
//              row straight into its home rank's segment. Home adds them to the token's output.
// The shared expert runs on the home rank. With overlap on (MPI transport), the tokens go as two
// micro-batches so one's exchange proceeds while the other computes (progress is driven by
// MPI_Test calls between expert GEMMs). With ep = 1 the exchange is a local copy: the same code
// path serves every world size.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "comm/comm.h"
#include "comm/shared_window.h"
#include "dist/expert_placement.h"
#include "dist/moe_payload.h"
#include "model/config/config.h"
#include "model/blocks/moe.h"
#include "model/blocks/moe_grouped.h"
#include "model/io/model_weights.h"

namespace modelone {

enum class Transport : uint8_t { Auto, Mpi, Shm };

struct MoeOptions {
  Payload dispatch = Payload::F32;
  Payload combine = Payload::F32;
  bool overlap = false;         // two micro-batches (MPI transport)
  Transport transport = Transport::Auto;  // auto: shm when the ep group is on one node
  int64_t shm_round_tokens = 1024;        // tokens per rank per shared-memory round
  // bf16 compute with more than kGemvMaxRows rows for some expert: all experts in one grouped
  // product (model/blocks/moe_grouped.h); false: one expert at a time (bench moe's A / B).
  bool grouped_experts = true;
};

struct MoeTimers {
  double route = 0, pack = 0, exchange = 0, experts = 0, combine = 0;  // seconds
  int64_t rows_sent = 0, bytes_sent = 0;
  void clear() { *this = MoeTimers{}; }
  template <class S, class F>
  static void fields(S& s, F&& f) {  // comm/rank_stats.h
    f("route", s.route), f("pack", s.pack), f("exchange", s.exchange), f("experts", s.experts);
    f("combine", s.combine), f("rows_sent", s.rows_sent), f("bytes_sent", s.bytes_sent);
  }
};

// One micro-batch on its way through dispatch, experts and combine. The layout (send_rows,
// recv_rows, row_token) is the handle combine reuses to bring results home.
struct MoeBatch {
  int64_t t0 = 0, T = 0;               // its tokens: [t0, t0 + T) of the layer input
  std::vector<int64_t> send_rows, recv_rows;
  std::vector<int32_t> row_token;      // [rows sent] token index within the batch
  std::vector<uint8_t> send, recv;     // MPI: dispatch rows
  std::vector<uint8_t> out, back;      // MPI: combine rows computed here / returned home
  std::vector<const uint8_t*> in_rows; // the dispatch rows this rank runs, wherever they are
  std::vector<uint8_t*> out_rows;      // where each one's combine row goes
  bool more = false;                   // shm: some rank has tokens left for another round
  bool received = false;               // in_rows / out_rows are set for this batch
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
  // shared_done: y already holds the shared expert's output (a decode step split it over the
  // cp group, dist/decode_split.h); the routed results are added to it.
  void forward(int64_t layer, const LayerWeights& w, const float* h, int64_t T,
               const int32_t* ids, float* y, bool shared_done = false);

  // The exchange as separate steps (the ep benchmark times them). dispatch() returns with this
  // rank's rows readable through b->in_rows; run_experts() computes (w == nullptr: every expert
  // is the identity, an exchange-only stand-in) and writes b->out_rows; combine() adds the
  // batch's results into y at home. With the shm transport all ranks must loop while b->more.
  void dispatch(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T,
                MoeBatch* b);
  void run_experts(int64_t layer, const LayerWeights* w, MoeBatch* b,
                   const std::function<void()>& progress);
  void combine(MoeBatch* b, float* y);

  bool uses_shared_memory() const { return window_.valid(); }
  int64_t round_tokens() const { return window_.valid() ? opt_.shm_round_tokens : INT64_MAX; }
  const ExpertPlacement& placement(int64_t layer) const { return placement_[size_t(layer)]; }
  const RowCodec& codec() const { return codec_; }
  const MoeOptions& options() const { return opt_; }

  MoeTimers timers;
  // Routed (token, expert) pairs of this rank's tokens [layer][expert], and (row, expert) pairs
  // this rank computed [layer]: the inputs of --expert-stats.
  std::vector<std::vector<int64_t>> expert_tokens;
  std::vector<int64_t> computed_pairs;

 private:
  void layout(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T, MoeBatch* b,
              uint8_t* rows);
  void start_dispatch_mpi(MoeBatch* b);
  void finish_dispatch_mpi(MoeBatch* b);
  void start_combine_mpi(MoeBatch* b);
  // Rows to every rank: started (overlap: finished by wait(b->req)) or done here (blocking).
  void exchange(MoeBatch* b, const void* send, const std::vector<int64_t>& send_rows, void* recv,
                const std::vector<int64_t>& recv_rows, int64_t row_bytes);
  void finish_combine_mpi(MoeBatch* b, float* y);
  void dispatch_shm(int64_t layer, const Routing& r, const float* h, int64_t t0, int64_t T,
                    MoeBatch* b);
  void combine_shm(MoeBatch* b, float* y);
  void add_rows(const MoeBatch& b, const uint8_t* rows, float* y);
  void wait(comm::Request& r);
  ExpertPairs group_pairs(int64_t layer, const MoeBatch& b) const;
  void run_each_expert(const LayerWeights* w, const MoeBatch& b, const ExpertPairs& P,
                       const std::function<void()>& progress);

  const ModelConfig& cfg_;
  const comm::Comm& ep_;
  std::vector<ExpertPlacement> placement_;
  MoeOptions opt_;
  RowCodec codec_;
  comm::SharedWindow window_;  // shm transport: header | rows | results per rank
  int64_t shm_rows_ = 0;       // row capacity of a segment's rows and results areas
  size_t shm_rows_off_ = 0, shm_results_off_ = 0;
  MoeBatch batches_[2];
  std::vector<float> xin_, yout_, acc_;
  std::vector<int32_t> dest_;  // layout scratch
  std::vector<int64_t> row_of_, off_;
};

}  // namespace modelone
