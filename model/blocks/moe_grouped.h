// All of a layer's routed rows through their experts as one grouped product on the bf16 compute
// path, the way llama.cpp's mul_mat_id runs a MoE layer: no product per expert with its own
// set-up and its own split over the threads, but tasks of (expert, 64-column weight panel) that
// the threads take in turn. Each task decodes its panel once from the stored type (bf16, FP8,
// FP4, fp32) into VDPBF16PS's pair layout and runs every row of its expert against it on one
// thread (model/kernels/bf16_thread_gemm.cpp), so nothing depends on the row count: no oneDNN
// primitive per new shape, no barrier per expert, SwiGLU fused into the gate / up panel.
//   gate / up: task (e, j) -> h_e[:, j*64 : j*64 + 64] = bf16(silu(min(g, lim)) * clamp(u))
//   down:      task j      -> for every expert e: acc[row, j*64 : ...] += w * (h_e @ W2_e^T)
// (down's tasks own columns of acc, so rows shared by several experts need no locks).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config/config.h"
#include "model/io/model_weights.h"

namespace modelone {

// The (row, weight) pairs of each expert, grouped: expert e's pairs are [offset[e], offset[e+1]).
struct ExpertPairs {
  std::vector<int64_t> offset;  // [E + 1]
  std::vector<int32_t> row;     // [pairs] row of x / acc
  std::vector<float> weight;    // [pairs] routing weight
  int64_t max_rows() const;     // the most pairs of any one expert
};

// acc[row, :] += weight * expert_ffn(x[row, :]) for every pair (x, acc: [n, D] fp32). Experts
// with no pairs may be absent (not loaded on this rank). Runs on all OpenMP threads; call it
// outside a parallel region, on a CPU with AVX512-BF16 for speed (portable kernels otherwise).
// progress (if set) is called on the calling thread between the phases (the overlapped
// exchange of another micro-batch moves only when polled).
void grouped_experts_bf16(const ModelConfig& cfg, const std::vector<ExpertWeights>& experts,
                          const ExpertPairs& pairs, const float* x, float* acc,
                          const std::function<void()>& progress = nullptr);

}  // namespace modelone
