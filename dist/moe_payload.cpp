#include "dist/moe_payload.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/base/check.h"
#include "model/base/dtype.h"

namespace modelone {

namespace {
int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }
int64_t elem_bytes(Payload p) { return p == Payload::F32 ? 4 : p == Payload::BF16 ? 2 : 1; }
}  // namespace

RowCodec::RowCodec(int64_t hidden, int64_t top_k, Payload dispatch, Payload combine)
    : D_(hidden), k_(top_k), dispatch_(dispatch), combine_(combine) {
  MO_REQUIRE(combine != Payload::FP8, "combine payload must be fp32 or bf16");
  n_scales_ = dispatch == Payload::FP8 ? (D_ + kFp8Block - 1) / kFp8Block : 0;
  payload_off_ = 8 * k_ + 4 * n_scales_;
  dispatch_bytes_ = pad16(payload_off_ + D_ * elem_bytes(dispatch));
  combine_bytes_ = pad16(D_ * elem_bytes(combine));
}

void RowCodec::encode_dispatch(const float* x, const int32_t* experts, const float* weights,
                               uint8_t* row) const {
  std::memcpy(row, experts, size_t(4 * k_));
  std::memcpy(row + 4 * k_, weights, size_t(4 * k_));
  uint8_t* p = row + payload_off_;
  switch (dispatch_) {
    case Payload::F32: std::memcpy(p, x, size_t(4 * D_)); break;
    case Payload::BF16: narrow_from_f32(DType::BF16, x, p, size_t(D_)); break;
    case Payload::FP8: {
      auto* scales = reinterpret_cast<float*>(row + 8 * k_);
      for (int64_t b = 0; b < n_scales_; ++b) {
        const int64_t lo = b * kFp8Block, hi = std::min(D_, lo + kFp8Block);
        float amax = 0.f;
#pragma omp simd reduction(max : amax)
        for (int64_t i = lo; i < hi; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float s = amax > 0 ? amax / 448.f : 1.f;  // the block's max maps to e4m3's max
        scales[b] = s;
        f32_to_e4m3_scaled(x + lo, 1.f / s, p + lo, size_t(hi - lo));
      }
      break;
    }
  }
}

void RowCodec::decode_dispatch(const uint8_t* row, float* x) const {
  const uint8_t* p = row + payload_off_;
  switch (dispatch_) {
    case Payload::F32: std::memcpy(x, p, size_t(4 * D_)); break;
    case Payload::BF16: widen_to_f32(DType::BF16, p, x, size_t(D_)); break;
    case Payload::FP8: {
      widen_to_f32(DType::F8_E4M3, p, x, size_t(D_));
      const auto* scales = reinterpret_cast<const float*>(row + 8 * k_);
      for (int64_t b = 0; b < n_scales_; ++b) {
        const int64_t lo = b * kFp8Block, hi = std::min(D_, lo + kFp8Block);
        for (int64_t i = lo; i < hi; ++i) x[i] *= scales[b];
      }
      break;
    }
  }
}

void RowCodec::encode_combine(const float* y, uint8_t* row) const {
  if (combine_ == Payload::F32) std::memcpy(row, y, size_t(4 * D_));
  else narrow_from_f32(DType::BF16, y, row, size_t(D_));
}

void RowCodec::add_combine(const uint8_t* row, float* y) const {
  if (combine_ == Payload::F32) {
    const auto* r = reinterpret_cast<const float*>(row);
    for (int64_t i = 0; i < D_; ++i) y[i] += r[i];
  } else {
    const auto* r = reinterpret_cast<const uint16_t*>(row);
    for (int64_t i = 0; i < D_; ++i) y[i] += bf16_to_f32(r[i]);
  }
}

}  // namespace modelone
