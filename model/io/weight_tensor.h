// A tensor as the model holds it: checkpoint dtype, shape, and the memory that backs it (an mmap'd
// checkpoint file or a buffer made for synthetic weights). Weights stay in their stored dtype
// (bf16 is 2 bytes a parameter) and are widened to fp32 a tile at a time where they are used.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/base/dtype.h"

namespace modelone {

struct Weight {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::shared_ptr<const void> owner;  // keeps `data` alive

  // FP8 weights carry one scale per (block_rows x block_cols) block: scale is [ceil(rows/br),
  // ceil(cols/bc)] (DeepSeek's `.scale` / transformers' `weight_scale_inv`). FP4 (F4_E2M1)
  // expert weights: shape is the logical [out, in], the data in/2 bytes a row, and one scale
  // per 32 values of a row (block 1 x 32).
  std::shared_ptr<Weight> scale;
  int64_t block_rows = 128, block_cols = 128;

  bool empty() const { return data == nullptr; }
  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  // Elements per row: the product of all dims after the first (1 for a vector).
  int64_t cols() const;
  size_t nbytes() const { return dtype_bytes(dtype, size_t(numel())); }

  // Rows [r0, r0 + n) widened to fp32 into out[n, cols()], block scales applied.
  void rows_f32(int64_t r0, int64_t n, float* out) const;
  // The whole tensor as fp32 (small tensors: norms, biases, sinks).
  std::vector<float> to_f32() const;
  float at_f32(int64_t i) const;
  int64_t at_i64(int64_t i) const;  // integer tensors (tid2eid)
};

// DType::BF16_P64's panels (dtype.h): panel p holds rows [64 p, 64 p + 64), [K / 2][64] uint32.
constexpr int64_t kPanelRows = 64;
inline const uint32_t* weight_panel(const Weight& w, int64_t p) {
  return static_cast<const uint32_t*>(w.data) + p * (w.cols() / 2) * kPanelRows;
}
// Rows [r0, r0 + n) of a BF16_P64 weight back in row order, bf16 [n, cols()].
void panel_rows_bf16(const Weight& w, int64_t r0, int64_t n, uint16_t* out);

// An owned fp32 or bf16 copy of data, for synthetic weights and tests.
Weight make_weight(std::string name, DType dtype, std::vector<int64_t> shape,
                   const std::vector<float>& values);

std::string shape_str(const std::vector<int64_t>& s);

// How synthetic values are drawn: uniform with this mean and standard deviation, or a tid2eid
// table of distinct expert ids.
struct Init {
  float mean = 0.f, std = 0.02f;
  bool tid2eid = false;
};

// One tensor a weight source is asked for (the tensor table makes these).
struct WeightRequest {
  std::string name;
  std::vector<int64_t> shape;
  Init init;
  bool integer = false;
  int64_t int_range = 0;  // integer tables hold values in [0, int_range) (tid2eid: n_experts)
  bool expert = false;    // a routed expert's weight (the only place FP4 is read)
};

}  // namespace modelone
