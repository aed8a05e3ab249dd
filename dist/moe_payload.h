// Row formats of the expert exchange. A dispatch row carries one token to one rank:
//   [k int32 expert ids (-1: not for this rank)][k fp32 weights][scales][payload]
// with the hidden vector as fp32, bf16, or fp8 e4m3 with one fp32 scale per 128 values. A combine
// row carries the rank's weighted expert sum back, as fp32 or bf16. Rows are padded to 16 bytes.
#pragma once
#include <cstdint>
#include <string>

namespace modelone {

enum class Payload : uint8_t { F32, BF16, FP8 };
const char* payload_name(Payload p);

class RowCodec {
 public:
  static constexpr int64_t kFp8Block = 128;

  RowCodec(int64_t hidden, int64_t top_k, Payload dispatch, Payload combine);

  int64_t dispatch_bytes() const { return dispatch_bytes_; }
  int64_t combine_bytes() const { return combine_bytes_; }

  void encode_dispatch(const float* x, const int32_t* experts, const float* weights,
                       uint8_t* row) const;
  void decode_dispatch(const uint8_t* row, float* x) const;
  const int32_t* experts(const uint8_t* row) const { return reinterpret_cast<const int32_t*>(row); }
  const float* weights(const uint8_t* row) const {
    return reinterpret_cast<const float*>(row + 4 * k_);
  }

  void encode_combine(const float* y, uint8_t* row) const;
  void add_combine(const uint8_t* row, float* y) const;  // y += decoded row

 private:
  int64_t D_, k_;
  Payload dispatch_, combine_;
  int64_t n_scales_, payload_off_, dispatch_bytes_, combine_bytes_;
};

}  // namespace modelone
