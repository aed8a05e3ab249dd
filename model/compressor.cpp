#include "model/compressor.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "model/gemm.h"
#include "model/kernels.h"

namespace modelone {

namespace {

// Pool one closed window held in st.pending_* into entry[width].
void close_window(CompressorState& st, const std::vector<float>& ape, const std::vector<float>& norm_w,
                  const Rope& rope, float eps, int64_t window_index, float* entry) {
  const int64_t m = st.rate, W = st.width, pw = st.proj_width();
  std::vector<float>& kv = st.pending_kv;
  std::vector<float>& g = st.pending_gate;
  for (int64_t r = 0; r < m; ++r)  // gate + position bias
    for (int64_t c = 0; c < pw; ++c) g[size_t(r * pw + c)] += ape[size_t(r * pw + c)];
  const int64_t b_off = st.overlap ? W : 0;  // this window's own series
  for (int64_t c = 0; c < W; ++c) {
    // Per-channel softmax over the pooled rows: the previous window's series a (CSA) and this
    // window's own rows.
    float mx = -INFINITY;
    if (st.overlap && st.has_prev)
      for (int64_t r = 0; r < m; ++r) mx = std::max(mx, st.prev_gate[size_t(r * W + c)]);
    for (int64_t r = 0; r < m; ++r) mx = std::max(mx, g[size_t(r * pw + b_off + c)]);
    float den = 0.f, num = 0.f;
    if (st.overlap && st.has_prev)
      for (int64_t r = 0; r < m; ++r) {
        const float e = std::exp(st.prev_gate[size_t(r * W + c)] - mx);
        den += e;
        num += e * st.prev_kv[size_t(r * W + c)];
      }
    for (int64_t r = 0; r < m; ++r) {
      const float e = std::exp(g[size_t(r * pw + b_off + c)] - mx);
      den += e;
      num += e * kv[size_t(r * pw + b_off + c)];
    }
    entry[c] = num / den;
  }
  if (st.overlap) {  // keep this window's series a for the next window
    for (int64_t r = 0; r < m; ++r) {
      std::memcpy(&st.prev_kv[size_t(r * W)], &kv[size_t(r * pw)], size_t(W) * 4);
      std::memcpy(&st.prev_gate[size_t(r * W)], &g[size_t(r * pw)], size_t(W) * 4);
    }
    st.has_prev = true;
  }
  rms_norm(entry, W, eps, norm_w.data());
  rope.apply(entry, 1, W, window_index * m);
}

}  // namespace

int64_t compressor_feed(CompressorState& st, const CompressorWeights& w, const Rope& rope,
                        float eps, const float* kv, const float* gate, int64_t T, KvStore& out) {
  const int64_t pw = st.proj_width(), W = st.width;
  const std::vector<float> ape = w.ape.to_f32(), norm_w = w.norm.to_f32();
  std::vector<float> entry(static_cast<size_t>(W));
  int64_t emitted = 0;
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(&st.pending_kv[size_t(st.n_pending * pw)], kv + t * pw, size_t(pw) * 4);
    std::memcpy(&st.pending_gate[size_t(st.n_pending * pw)], gate + t * pw, size_t(pw) * 4);
    if (++st.n_pending < st.rate) continue;
    close_window(st, ape, norm_w, rope, eps, out.rows(), entry.data());
    out.append(entry.data(), 1);
    st.n_pending = 0;
    ++emitted;
  }
  return emitted;
}

int64_t compressor_project_and_feed(CompressorState& st, const CompressorWeights& w,
                                    const Rope& rope, float eps, const float* h, int64_t T,
                                    KvStore& out) {
  const int64_t pw = st.proj_width();
  static thread_local std::vector<float> kv, gate;  // kept between layers: no page faults per call
  kv.resize(size_t(T * pw));
  gate.resize(size_t(T * pw));
  linear(h, T, w.wkv.cols(), w.wkv, 0, pw, kv.data(), pw);
  linear(h, T, w.wgate.cols(), w.wgate, 0, pw, gate.data(), pw);
  return compressor_feed(st, w, rope, eps, kv.data(), gate.data(), T, out);
}

}  // namespace modelone
