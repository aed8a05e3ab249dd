#include "model/blocks/engram.h"

#include <cmath>

#include "model/base/check.h"
#include "model/kernels/linear.h"
#include "model/base/splitmix.h"

namespace modelone {

int64_t engram_row_bytes(DType dtype, int64_t head_dim) {
  switch (dtype) {
    case DType::F32: return head_dim * 4;
    case DType::BF16: return head_dim * 2;
    case DType::F8_E4M3: return head_dim + head_dim / 32;
    default: fail("Engram tables hold F32, BF16 or F8_E4M3 rows, not ", dtype_name(dtype));
  }
}

void engram_row_to_f32(DType dtype, int64_t head_dim, const uint8_t* row, float* out) {
  if (dtype != DType::F8_E4M3) {
    widen_to_f32(dtype, row, out, size_t(head_dim));
    return;
  }
  // A table of the 256 codes: every fetched row is dequantized, so this runs per lookup.
  static const std::vector<float> lut = [] {
    std::vector<float> t(256);
    for (int c = 0; c < 256; ++c) t[size_t(c)] = e4m3_to_f32(uint8_t(c));
    return t;
  }();
  const uint8_t* scales = row + head_dim;
  for (int64_t b = 0; b < head_dim / 32; ++b) {
    const float s = ue8m0_to_f32(scales[b]);
    for (int64_t i = b * 32; i < b * 32 + 32; ++i) out[i] = lut[row[i]] * s;
  }
}

void synth_engram_rows(uint64_t seed, int64_t table, DType dtype, int64_t head_dim, int64_t r0,
                       int64_t n, uint8_t* out) {
  const int64_t rb = engram_row_bytes(dtype, head_dim);
  std::vector<float> v(static_cast<size_t>(head_dim));
  for (int64_t r = 0; r < n; ++r) {
    const uint64_t base = splitmix64(seed ^ splitmix64(uint64_t(table) * 0x9e3779b97f4a7c15ull + uint64_t(r0 + r)));
    for (int64_t i = 0; i < head_dim; ++i)  // uniform in [-1, 1)
      v[size_t(i)] = float(double(splitmix64(base + uint64_t(i)) >> 11) * 0x1p-52 - 1.0);
    uint8_t* row = out + r * rb;
    if (dtype == DType::F8_E4M3) {
      for (int64_t b = 0; b < head_dim / 32; ++b) {
        float amax = 0;
        for (int64_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[size_t(b * 32 + i)]));
        const uint8_t code = f32_to_ue8m0_ceil(amax / 448.f);
        row[head_dim + b] = code;
        f32_to_e4m3_scaled(v.data() + b * 32, 1.f / ue8m0_to_f32(code), row + b * 32, 32);
      }
    } else {
      narrow_from_f32(dtype, v.data(), row, size_t(head_dim));
    }
  }
}

std::vector<int32_t> synthetic_compression_map(uint64_t seed, int64_t vocab, int64_t compressed_vocab) {
  std::vector<int32_t> m(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i)
    m[size_t(i)] = int32_t(splitmix64(seed * 31 + 0x5eed + uint64_t(i)) % uint64_t(compressed_vocab));
  return m;
}

void check_compression_map(const std::vector<int32_t>& map, const ModelConfig& cfg,
                           const std::string& source) {
  MO_REQUIRE(int64_t(map.size()) == cfg.vocab_size, source, ": the Engram compression map has ",
             map.size(), " entries for a vocabulary of ", cfg.vocab_size);
  for (size_t i = 0; i < map.size(); ++i)
    MO_REQUIRE(map[i] >= 0 && map[i] < cfg.engram.compressed_vocab, source,
               ": the Engram compression map sends token ", i, " to ", map[i],
               ", outside the compressed vocabulary [0, ", cfg.engram.compressed_vocab, ")");
}

void engram_forward(const ModelConfig& cfg, const EngramWeights& w, const float* e, int64_t T,
                    float* x, std::vector<float>* kv_buf) {
  if (T == 0) return;
  kv_buf->resize(size_t(T * (cfg.hc_mult + 1) * cfg.hidden_size));
  linear(e, T, w.wkv, kv_buf->data());
  engram_gate(cfg, w, kv_buf->data(), T, x);
}

void engram_gate(const ModelConfig& cfg, const EngramWeights& w, const float* kv, int64_t T,
                 float* x) {
  const int64_t D = cfg.hidden_size, hc = cfg.hc_mult, N = (hc + 1) * D;
  const std::vector<float> q = w.q_weight.to_f32(), k = w.k_weight.to_f32();
  const double eps = cfg.rms_norm_eps, inv_sqrt_d = 1.0 / std::sqrt(double(D));
  for (int64_t t = 0; t < T; ++t) {
    const float* v = kv + t * N + hc * D;
    for (int64_t m = 0; m < hc; ++m) {
      float* h = x + (t * hc + m) * D;
      const float* key = kv + t * N + m * D;
      const float *qm = q.data() + m * D, *km = k.data() + m * D;
      double dot = 0, hh = 0, kk = 0;
      for (int64_t i = 0; i < D; ++i) {
        dot += double(h[i]) * qm[i] * km[i] * key[i];
        hh += double(h[i]) * h[i];
        kk += double(key[i]) * key[i];
      }
      dot *= inv_sqrt_d / std::sqrt(hh / double(D) + eps) / std::sqrt(kk / double(D) + eps);
      const double s = (dot > 0) - (dot < 0);
      const float g = float(1.0 / (1.0 + std::exp(-s * std::sqrt(std::max(std::fabs(dot), 1e-6)))));
      for (int64_t i = 0; i < D; ++i) h[i] += g * v[i];
    }
  }
}

}  // namespace modelone
