#include "model/kernels/panel_weights.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "model/base/check.h"
#include "model/kernels/bf16_decode.h"

namespace modelone {

bool pack_weight_panels(Weight& w) {
  const int64_t R = w.rows(), K = w.cols();
  if (w.empty() || w.dtype != DType::BF16 || w.scale || R % kPanelRows || K % 2 || K == 0)
    return false;
  const int64_t per_panel = K / 2 * kPanelRows, n = R / kPanelRows;  // uint32 per panel, panels
  const size_t bytes = size_t(n * per_panel) * 4;                     // a multiple of 256
  auto* buf = static_cast<uint32_t*>(std::aligned_alloc(64, bytes));
  MO_CHECK(buf, "out of memory repacking ", w.name, " (", bytes, " bytes)");
  std::shared_ptr<uint32_t> owner(buf, [](uint32_t* p) { std::free(p); });
  const auto* src = static_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < n; ++p)
    pack_panel_bf16(src + p * kPanelRows * K, K, kPanelRows, K, buf + p * per_panel);
  w.dtype = DType::BF16_P64;
  w.data = buf;
  w.owner = std::move(owner);  // the rows' buffer (or file mapping) goes when nothing else holds it
  return true;
}

namespace {

// One task: rows [t0, t0 + m) of x against panel p, columns [lo, hi) of W's rows into y.
void panel_task(const uint16_t* xb, int64_t ldx, const Weight& w, int64_t p, int64_t t0,
                int64_t m, int64_t r0, int64_t lo, int64_t hi, float* y, int64_t ldy,
                bool accumulate) {
  const int64_t K = w.cols(), c0 = p * kPanelRows;
  const uint16_t* a = xb + t0 * ldx;
  if (lo == c0 && hi == c0 + kPanelRows) {
    gemm_bf16_panel(m, K, a, ldx, weight_panel(w, p), kPanelRows, y + t0 * ldy + (c0 - r0), ldy,
                    accumulate);
    return;
  }
  // A panel cut by [r0, r0 + N): all 64 columns into scratch, then the wanted ones.
  static thread_local std::vector<float> tmp;
  tmp.resize(size_t(m * kPanelRows));
  gemm_bf16_panel(m, K, a, ldx, weight_panel(w, p), kPanelRows, tmp.data(), kPanelRows, false);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = lo; c < hi; ++c) {
      float& o = y[(t0 + i) * ldy + (c - r0)];
      const float v = tmp[size_t(i * kPanelRows + (c - c0))];
      o = accumulate ? o + v : v;
    }
}

}  // namespace

void linear_panels(const uint16_t* xb, int64_t T, int64_t ldx, const Weight& w, int64_t r0,
                   int64_t N, float* y, int64_t ldy, bool accumulate) {
  MO_CHECK(w.dtype == DType::BF16_P64 && r0 >= 0 && r0 + N <= w.rows(), w.name, ": rows ", r0,
           "+", N, " of ", w.rows());
  if (T == 0 || N == 0) return;
  // 256 rows of x (2 MiB at K = 4096) against one panel (K * 128 bytes) per task.
  constexpr int64_t kRowsPerTask = 256;
  const int64_t p0 = r0 / kPanelRows, np = (r0 + N - 1) / kPanelRows + 1 - p0;
  const int64_t nb = (T + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel for collapse(2) schedule(dynamic) num_threads(omp_in_parallel() ? 1 : omp_get_max_threads())
  for (int64_t i = 0; i < np; ++i)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t p = p0 + i, c0 = p * kPanelRows;
      const int64_t t0 = b * kRowsPerTask, m = std::min(kRowsPerTask, T - t0);
      panel_task(xb, ldx, w, p, t0, m, r0, std::max(c0, r0), std::min(c0 + kPanelRows, r0 + N),
                 y, ldy, accumulate);
    }
}

}  // namespace modelone
