#include "model/blocks/compressor.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "model/base/check.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"

namespace modelone {

namespace {

// Pool window wi, whose rows (and for CSA the previous window's) are in st, into entry[width]:
// normed, before RoPE. ape may be null (V4.1 has no position bias).
void close_window(const CompressorState& st, const float* ape, const float* norm_w, float eps,
                  int64_t wi, float* entry) {
  const int64_t m = st.rate, W = st.width, pw = st.proj_width();
  const int64_t cur = wi * m - st.first;       // row of this window's first position
  const bool prev = st.overlap && wi > 0;      // CSA: the previous window's series a joins
  const int64_t prv = cur - m;
  const int64_t b_off = st.overlap ? W : 0;    // this window's own series
  thread_local std::vector<float> zeros;
  if (!ape) {
    zeros.assign(size_t(m * pw), 0.f);
    ape = zeros.data();
  }
  for (int64_t c = 0; c < W; ++c) {
    // Per-channel softmax over the pooled rows of (gate + position bias).
    float mx = -INFINITY;
    if (prev)
      for (int64_t r = 0; r < m; ++r)
        mx = std::max(mx, st.gate[size_t((prv + r) * pw + c)] + ape[r * pw + c]);
    for (int64_t r = 0; r < m; ++r)
      mx = std::max(mx, st.gate[size_t((cur + r) * pw + b_off + c)] + ape[r * pw + b_off + c]);
    float den = 0.f, num = 0.f;
    if (prev)
      for (int64_t r = 0; r < m; ++r) {
        const float e = std::exp(st.gate[size_t((prv + r) * pw + c)] + ape[r * pw + c] - mx);
        den += e;
        num += e * st.kv[size_t((prv + r) * pw + c)];
      }
    for (int64_t r = 0; r < m; ++r) {
      const float e =
          std::exp(st.gate[size_t((cur + r) * pw + b_off + c)] + ape[r * pw + b_off + c] - mx);
      den += e;
      num += e * st.kv[size_t((cur + r) * pw + b_off + c)];
    }
    entry[c] = num / den;
  }
  rms_norm(entry, W, eps, norm_w);
}

}  // namespace

int64_t compressor_feed(CompressorState& st, const CompressorWeights& w, const Rope& rope,
                        float eps, const float* kv, const float* gate, int64_t T, EntryStore& out) {
  std::vector<float> latents;
  std::vector<int32_t> index;
  const int64_t n = compressor_feed_latents(st, w, eps, kv, gate, T, &latents, &index);
  const int64_t W = st.width;
  for (int64_t i = 0; i < n; ++i) {
    float* e = latents.data() + i * W;
    rope.apply(e, 1, W, int64_t(index[size_t(i)]) * st.rate);  // at the window's first position
    out.append(e, 1, index[size_t(i)]);
  }
  return n;
}

int64_t compressor_feed_latents(CompressorState& st, const CompressorWeights& w, float eps,
                                const float* kv, const float* gate, int64_t T,
                                std::vector<float>* latents, std::vector<int32_t>* index) {
  const int64_t pw = st.proj_width(), m = st.rate;
  MO_CHECK(st.first == st.lookback_start(st.end()), "compressor state at ", st.end(),
           " holds rows from ", st.first);
  const std::vector<float> ape = w.ape.empty() ? std::vector<float>() : w.ape.to_f32();
  const std::vector<float> norm_w = w.norm.to_f32();
  std::vector<float> entry(static_cast<size_t>(st.width));
  latents->clear();
  index->clear();
  int64_t emitted = 0;
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(&st.kv[size_t(st.n * pw)], kv + t * pw, size_t(pw) * 4);
    std::memcpy(&st.gate[size_t(st.n * pw)], gate + t * pw, size_t(pw) * 4);
    ++st.n;
    if (st.end() % m != 0) continue;
    const int64_t wi = st.end() / m - 1;
    close_window(st, ape.empty() ? nullptr : ape.data(), norm_w.data(), eps, wi, entry.data());
    latents->insert(latents->end(), entry.begin(), entry.end());
    index->push_back(int32_t(wi));
    ++emitted;
    // Keep only what the next window needs (CSA: this window's rows for its series a).
    const int64_t keep_from = st.lookback_start(st.end()), drop = keep_from - st.first;
    if (drop > 0) {
      const int64_t keep = st.n - drop;
      std::memmove(st.kv.data(), st.kv.data() + drop * pw, size_t(keep * pw) * 4);
      std::memmove(st.gate.data(), st.gate.data() + drop * pw, size_t(keep * pw) * 4);
      st.first = keep_from;
      st.n = keep;
    }
  }
  return emitted;
}

void compressor_project(const CompressorWeights& w, int64_t pw, const float* h, int64_t T,
                        float* kv, float* gate) {
  linear(h, T, w.wkv.cols(), w.wkv, 0, pw, kv, pw);
  if (w.wgate.empty()) {  // V4.1 ratio 1: one row per entry, its softmax weight exactly 1
    std::fill(gate, gate + T * pw, 0.f);
    return;
  }
  linear(h, T, w.wgate.cols(), w.wgate, 0, pw, gate, pw);
}

}  // namespace modelone
