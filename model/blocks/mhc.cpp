#include "model/blocks/mhc.h"

#include <cmath>
#include <vector>

#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"
#include "model/kernels/omp_threads.h"

namespace modelone {

namespace {

// mixes[T, n_out] = RMSNorm_unweighted(x[t] as one hc*D vector) @ fn^T. The norm is a per-token
// scalar, so it is applied after the product.
void hc_mixes(const ModelConfig& cfg, const Weight& fn, const float* x, int64_t T, float* mixes) {
  const int64_t n = cfg.hc_mult * cfg.hidden_size, n_out = fn.rows();
  linear_fp32(x, T, n, fn, 0, n_out, mixes, n_out);
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * n;
    float ss = 0.f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; ++i) ss += xt[i] * xt[i];
    const float r = 1.f / std::sqrt(ss / float(n) + float(cfg.rms_norm_eps));
    for (int64_t j = 0; j < n_out; ++j) mixes[t * n_out + j] *= r;
  }
}

}  // namespace

void sinkhorn(float* m, int64_t hc, int64_t iters, float eps) {
  for (int64_t r = 0; r < hc; ++r) {
    softmax(m + r * hc, hc);
    for (int64_t c = 0; c < hc; ++c) m[r * hc + c] += eps;
  }
  auto col_norm = [&] {
    for (int64_t c = 0; c < hc; ++c) {
      float s = 0.f;
      for (int64_t r = 0; r < hc; ++r) s += m[r * hc + c];
      for (int64_t r = 0; r < hc; ++r) m[r * hc + c] /= (s + eps);
    }
  };
  auto row_norm = [&] {
    for (int64_t r = 0; r < hc; ++r) {
      float s = 0.f;
      for (int64_t c = 0; c < hc; ++c) s += m[r * hc + c];
      for (int64_t c = 0; c < hc; ++c) m[r * hc + c] /= (s + eps);
    }
  };
  col_norm();
  for (int64_t i = 1; i < iters; ++i) {
    row_norm();
    col_norm();
  }
}

void sinkhorn_many(float* m, int64_t T, int64_t hc, int64_t iters, float eps) {
  constexpr int64_t L = 16;  // lanes: matrices at once
  const int64_t n = hc * hc;
  static thread_local std::vector<float> v;  // [n, L]: element i of lane l at v[i * L + l]
  v.resize(size_t(n * L));
  float* vv = v.data();
  // One normalisation: for each a, the sum over b of element at(a, b), then each divided by it.
  auto normalise = [&](auto at) {
    for (int64_t a = 0; a < hc; ++a) {
      float s[L] = {};
      for (int64_t b = 0; b < hc; ++b) {
        const float* x = vv + at(a, b) * L;
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) s[l] += x[l];
      }
      for (int64_t b = 0; b < hc; ++b) {
        float* x = vv + at(a, b) * L;
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) x[l] /= (s[l] + eps);
      }
    }
  };
  auto col = [hc](int64_t c, int64_t r) { return r * hc + c; };
  auto row = [hc](int64_t r, int64_t c) { return r * hc + c; };
  for (int64_t t0 = 0; t0 < T; t0 += L) {
    const int64_t nl = std::min(L, T - t0);
    for (int64_t l = 0; l < L; ++l) {
      if (l >= nl) {  // spare lanes: any finite values
        for (int64_t i = 0; i < n; ++i) vv[i * L + l] = 1.f;
        continue;
      }
      float* mt = m + (t0 + l) * n;
      for (int64_t r = 0; r < hc; ++r) {
        softmax(mt + r * hc, hc);
        for (int64_t c = 0; c < hc; ++c) mt[r * hc + c] += eps;
      }
      for (int64_t i = 0; i < n; ++i) vv[i * L + l] = mt[i];
    }
    normalise(col);
    for (int64_t i = 1; i < iters; ++i) {
      normalise(row);
      normalise(col);
    }
    for (int64_t l = 0; l < nl; ++l)
      for (int64_t i = 0; i < n; ++i) m[(t0 + l) * n + i] = vv[i * L + l];
  }
}

void hc_pre(const ModelConfig& cfg, const HcSite& site, const float* x, int64_t T,
            float* collapsed, float* post, float* comb) {
  static thread_local std::vector<float> pre;
  pre.resize(size_t(T * cfg.hc_mult));
  hc_mix(cfg, site, x, T, pre.data(), post, comb);
  hc_collapse(x, T, cfg.hc_mult, cfg.hidden_size, pre.data(), collapsed);
}

void hc_collapse(const float* x, int64_t T, int64_t hc, int64_t D, const float* pre, float* y) {
  parallel_for(T, T * hc * D > kSplitRowWork ? threads_here() : 1, [&](int64_t t) {
    float* out = y + t * D;
    const float* xt = x + t * hc * D;
    const float* p = pre + t * hc;
    for (int64_t d = 0; d < D; ++d) out[d] = p[0] * xt[d];
    for (int64_t i = 1; i < hc; ++i)
      for (int64_t d = 0; d < D; ++d) out[d] += p[i] * xt[i * D + d];
  });
}

void hc_mix(const ModelConfig& cfg, const HcSite& site, const float* x, int64_t T, float* pre,
            float* post, float* comb) {
  const int64_t hc = cfg.hc_mult, n_mix = (2 + hc) * hc;
  const float eps = float(cfg.hc_eps);
  std::vector<float> mixes(static_cast<size_t>(T * n_mix));
  hc_mixes(cfg, site.fn, x, T, mixes.data());
  const std::vector<float> base = site.base.to_f32(), scale = site.scale.to_f32();
  // Blocks of 16 tokens, sinkhorn_many's lanes; split over the threads past a prompt's few.
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (T + kBlock - 1) / kBlock;
  parallel_for(blocks, T > 64 ? threads_here() : 1, [&](int64_t b) {
    const int64_t t0 = b * kBlock, nt = std::min(kBlock, T - t0);
    for (int64_t t = t0; t < t0 + nt; ++t) {
      const float* mx = mixes.data() + t * n_mix;
      for (int64_t i = 0; i < hc; ++i) {
        pre[t * hc + i] = sigmoid(mx[i] * scale[0] + base[size_t(i)]) + eps;
        post[t * hc + i] = 2.f * sigmoid(mx[hc + i] * scale[1] + base[size_t(hc + i)]);
      }
      float* cb = comb + t * hc * hc;
      for (int64_t j = 0; j < hc * hc; ++j) cb[j] = mx[2 * hc + j] * scale[2] + base[size_t(2 * hc + j)];
    }
    sinkhorn_many(comb + t0 * hc * hc, nt, hc, cfg.hc_sinkhorn_iters, eps);
  });
}

void hc_post(int64_t T, int64_t hc, int64_t D, const float* out, const float* post,
             const float* comb, float* x) {
  parallel_for(T, T * hc * hc * D > kSplitRowWork ? threads_here() : 1, [&](int64_t t) {
    static thread_local std::vector<float> old;  // per thread, kept between calls
    old.resize(size_t(hc * D));
    float* xt = x + t * hc * D;
    std::copy(xt, xt + hc * D, old.begin());
    const float* cb = comb + t * hc * hc;
    const float* ot = out + t * D;
    for (int64_t k = 0; k < hc; ++k) {
      float* dst = xt + k * D;
      const float pk = post[t * hc + k];
      for (int64_t d = 0; d < D; ++d) dst[d] = pk * ot[d];
      for (int64_t j = 0; j < hc; ++j) {
        const float c = cb[j * hc + k];
        const float* src = old.data() + j * D;
        for (int64_t d = 0; d < D; ++d) dst[d] += c * src[d];
      }
    }
  });
}

void hc_head(const ModelConfig& cfg, const Weight& fn, const Weight& base, const Weight& scale,
             const float* x, int64_t T, float* y) {
  const int64_t hc = cfg.hc_mult, D = cfg.hidden_size;
  std::vector<float> mixes(static_cast<size_t>(T * hc));
  hc_mixes(cfg, fn, x, T, mixes.data());
  const std::vector<float> b = base.to_f32();
  const float s = scale.at_f32(0), eps = float(cfg.hc_eps);
  for (int64_t t = 0; t < T; ++t) {
    float* out = y + t * D;
    const float* xt = x + t * hc * D;
    for (int64_t i = 0; i < hc; ++i) {
      const float pre = sigmoid(mixes[size_t(t * hc + i)] * s + b[size_t(i)]) + eps;
      for (int64_t d = 0; d < D; ++d) out[d] = (i ? out[d] : 0.f) + pre * xt[i * D + d];
    }
  }
}

}  // namespace modelone
