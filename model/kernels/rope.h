// Rotary position embedding as DeepSeek-V4 uses it: interleaved pairs (x[2i], x[2i+1]) on the
// trailing rope dims of each head, with plain RoPE or YaRN-scaled frequencies.
#pragma once
#include <cstdint>
#include <vector>

namespace modelone {

struct RopeParams {
  enum class Type { Default, Yarn } type = Type::Default;
  double theta = 10000.0;
  int64_t dim = 64;                 // rotated dims per head (pairs = dim / 2)
  double factor = 1.0;              // YaRN
  int64_t original_max_position = 0;
  double beta_fast = 32, beta_slow = 1;
  double attention_factor = 1.0;    // multiplies cos and sin
  bool truncate = true;             // floor/ceil the YaRN correction range
};

class Rope {
 public:
  explicit Rope(const RopeParams& p);
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  int64_t dim() const { return dim_; }

  // Rotate the trailing dim() values of each of n_heads heads of width head_dim at x, in place,
  // at position pos. inverse = true applies the conjugate rotation (cos, -sin).
  void apply(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, bool inverse = false) const;

 private:
  std::vector<float> inv_freq_;
  int64_t dim_;
  float scale_;
};

}  // namespace modelone
