// linear() on the bf16 compute path (see linear.h): x rounded to bf16 once, weights fed as bf16.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "model/kernels/bf16_decode.h"
#include "model/base/check.h"
#include "model/base/cpu_features.h"
#include "model/kernels/linear.h"
#include "model/kernels/omp_threads.h"
#include "model/kernels/onednn_matmul.h"
#include "model/kernels/panel_weights.h"

namespace modelone {

namespace {

// Decode-sized products: threads split the weight rows; each streams its rows once at their
// stored width (bf16, FP8, FP4 decoded in registers) against all T rows of x.
void gemv(const uint16_t* xb, int64_t T, const Weight& w, int64_t r0, int64_t N, float* y,
          int64_t ldy, bool accumulate) {
  constexpr int64_t kRows = 64;
  const int64_t blocks = (N + kRows - 1) / kRows;
  parallel_for(blocks, threads_for_product(T, N, w.cols()), [&](int64_t b) {
    const int64_t n0 = b * kRows;
    dot_weight_rows_bf16(xb, T, w.cols(), w, r0 + n0, std::min(kRows, N - n0), y + n0, ldy,
                         accumulate);
  });
}

}  // namespace

void linear_bf16(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
                 float* y, int64_t ldy, bool accumulate) {
  check_linear(w, r0, N);
  if (T == 0 || N == 0) return;
  const int64_t K = w.cols();
  // Kept between calls (no fresh page faults each time); thread_local, so the parallel loops
  // below use the caller's buffers through plain pointers.
  static thread_local std::vector<uint16_t> xbuf, wbuf;
  xbuf.resize(size_t(T * K));
  uint16_t* xb = xbuf.data();
  const int nt = threads_here();
  parallel_for(T, T * K > 65536 ? nt : 1, [&](int64_t t) { rows_to_bf16(x + t * ldx, 1, ldx, K, xb + t * K); });
  if (w.dtype == DType::BF16_P64) {  // packed at load (routed experts): every T
    linear_panels(xb, T, K, w, r0, N, y, ldy, accumulate);
    return;
  }
  if (T <= kGemvMaxRows) {
    gemv(xb, T, w, r0, N, y, ldy, accumulate);
    return;
  }
  if (w.dtype == DType::BF16 && !w.scale) {
    matmul_bf16_nt(T, N, K, xb, K, static_cast<const uint16_t*>(w.data) + r0 * K, K, y, ldy,
                   accumulate);
    return;
  }
  // Other stored types: decode a chunk of rows to bf16 (all threads), then one matmul over it
  // (all threads). Chunks of up to 8M values (16 MiB): smaller ones cost more in oneDNN's
  // per-call work split than they save in cache (measured at T = 64: 256-row chunks of a
  // 2048 x 4096 weight ran at 0.6x one 2048-row chunk).
  const int64_t chunk = std::clamp<int64_t>((int64_t(8) << 20) / K, 64, N);
  wbuf.resize(size_t(std::min(chunk, N) * K));
  uint16_t* wb = wbuf.data();
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nn = std::min(chunk, N - n0);
    const int64_t per = (nn + nt - 1) / nt;
    parallel_for(nt, nt, [&](int64_t i) {
      const int64_t a = i * per, b = std::min(nn, a + per);
      if (a < b) weight_rows_bf16(w, r0 + n0 + a, b - a, wb + a * K);
    });
    matmul_bf16_nt(T, nn, K, xb, K, wb, K, y + n0, ldy, accumulate);
  }
}

}  // namespace modelone
