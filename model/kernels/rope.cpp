#include "model/kernels/rope.h"

#include <algorithm>
#include <cmath>

#include "model/base/check.h"

namespace modelone {

namespace {
// YaRN: the dimension index at which a frequency completes num_rot rotations over max_pos.
double correction_dim(double num_rot, double dim, double base, double max_pos) {
  return dim * std::log(max_pos / (num_rot * 2 * M_PI)) / (2 * std::log(base));
}
}  // namespace

Rope::Rope(const RopeParams& p) : dim_(p.dim), scale_(float(p.attention_factor)) {
  MO_REQUIRE(p.dim > 0 && p.dim % 2 == 0, "rope dim must be even and positive, got ", p.dim);
  const int64_t half = p.dim / 2;
  inv_freq_.resize(size_t(half));
  for (int64_t i = 0; i < half; ++i) {
    // fp32 exponent as transformers computes it: base ** (arange(0, dim, 2).float() / dim)
    const float e = float(2 * i) / float(p.dim);
    inv_freq_[size_t(i)] = float(1.0 / std::pow(p.theta, double(e)));
  }
  if (p.type != RopeParams::Type::Yarn) return;
  const double dim = double(p.dim);
  double low = correction_dim(p.beta_fast, dim, p.theta, double(p.original_max_position));
  double high = correction_dim(p.beta_slow, dim, p.theta, double(p.original_max_position));
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (int64_t i = 0; i < half; ++i) {
    const float extrap = inv_freq_[size_t(i)];
    const float interp = float(double(extrap) / p.factor);
    const float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.f, 1.f);
    const float keep = 1.f - ramp;  // weight of the unscaled (extrapolated) frequency
    inv_freq_[size_t(i)] = interp * (1.f - keep) + extrap * keep;
  }
}

void Rope::apply(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, bool inverse) const {
  const int64_t half = dim_ / 2, off = head_dim - dim_;
  // cos/sin once per position, shared by every head (fp32 angle, as transformers forms it).
  static thread_local std::vector<float> cs;
  cs.resize(size_t(2 * half));
  for (int64_t i = 0; i < half; ++i) {
    const float ang = float(pos) * inv_freq_[size_t(i)];
    cs[size_t(2 * i)] = float(std::cos(double(ang))) * scale_;
    const float s = float(std::sin(double(ang))) * scale_;
    cs[size_t(2 * i + 1)] = inverse ? -s : s;
  }
  for (int64_t h = 0; h < n_heads; ++h) {
    float* r = x + h * head_dim + off;
    for (int64_t i = 0; i < half; ++i) {
      const float a = r[2 * i], b = r[2 * i + 1], c = cs[size_t(2 * i)], s = cs[size_t(2 * i + 1)];
      r[2 * i] = a * c - b * s;
      r[2 * i + 1] = b * c + a * s;
    }
  }
}

}  // namespace modelone
