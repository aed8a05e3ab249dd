#include "model/blocks/moe_grouped.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "model/base/check.h"
#include "model/base/dtype.h"
#include "model/kernels/bf16_decode.h"
#include "model/kernels/elementwise.h"

namespace modelone {

namespace {

// Pairs per group: x and h of a group are gathered in bf16 ([rows, D] and [rows, I]), so a
// group bounds the scratch (4096 rows of V4-Flash: 32 + 16 MiB) whatever the batch.
constexpr int64_t kGroupRows = 4096;

// Per-thread scratch: a panel's decoded rows, its packed form, and one task's outputs.
struct Scratch {
  std::vector<uint16_t> rows;
  std::vector<uint32_t> panel, panel2;
  std::vector<float> y, y2;
};
Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// Rows [r0, r0 + nb) of w (each w.cols() long) as a panel: as loaded when w was packed at load
// (BF16_P64, r0 a multiple of 64), else packed into `panel` (bf16 straight from the weight,
// other types decoded to bf16 first).
const uint32_t* panel_of(const Weight& w, int64_t r0, int64_t nb, std::vector<uint16_t>& rows,
                         std::vector<uint32_t>& panel) {
  const int64_t K = w.cols();
  if (w.dtype == DType::BF16_P64) return weight_panel(w, r0 / kPanelCols);
  panel.resize(size_t((K + 1) / 2 * kPanelCols));
  if (w.dtype == DType::BF16 && !w.scale) {
    pack_panel_bf16(static_cast<const uint16_t*>(w.data) + r0 * K, K, nb, K, panel.data());
    return panel.data();
  }
  rows.resize(size_t(nb * K));
  weight_rows_bf16(w, r0, nb, rows.data());
  pack_panel_bf16(rows.data(), K, nb, K, panel.data());
  return panel.data();
}

// The panel of w's rows [r0, r0 + 64) as loaded (BF16_P64), to fetch ahead; null when w is packed
// per call (nothing to fetch before it is made).
const uint32_t* loaded_panel(const Weight& w, int64_t r0) {
  return w.dtype == DType::BF16_P64 && r0 < w.rows() ? weight_panel(w, r0 / kPanelCols) : nullptr;
}

struct Group {
  int64_t e0, e1, p0, np;  // experts [e0, e1), pairs [p0, p0 + np)
};

// Task (e, j): the gate and up products of expert e's rows on columns [j*64, j*64 + 64) of I,
// SwiGLU'd into h (bf16, rows of the group's pairs). next: the panel the thread reads after
// this task (fetched ahead while the up product runs).
void gate_up_task(const ModelConfig& cfg, const ExpertWeights& ew, const uint16_t* xg, int64_t m,
                  int64_t j, uint16_t* h, const uint32_t* next) {
  const int64_t D = cfg.hidden_size, I = ew.w1.rows(), c0 = j * kPanelCols;
  const int64_t nb = std::min(kPanelCols, I - c0);
  Scratch& s = scratch();
  s.y.resize(size_t(m * kPanelCols));
  s.y2.resize(size_t(m * kPanelCols));
  gemm_bf16_panel(m, D, xg, D, panel_of(ew.w1, c0, nb, s.rows, s.panel), nb, s.y.data(),
                  kPanelCols, false, loaded_panel(ew.w3, c0));
  gemm_bf16_panel(m, D, xg, D, panel_of(ew.w3, c0, nb, s.rows, s.panel), nb, s.y2.data(),
                  kPanelCols, false, next);
  const float lim = float(cfg.swiglu_limit);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < nb; ++c) {
      float g = s.y[size_t(i * kPanelCols + c)], u = s.y2[size_t(i * kPanelCols + c)];
      if (lim > 0) g = std::min(g, lim), u = std::clamp(u, -lim, lim);
      h[i * I + c0 + c] = f32_to_bf16(silu(g) * u);
    }
}

// Task j: columns [j*64, j*64 + 64) of D for every expert of the group, added into acc.
void down_task(const ModelConfig& cfg, const std::vector<ExpertWeights>& experts,
               const ExpertPairs& P, const Group& g, const uint16_t* h, int64_t j, float* acc) {
  const int64_t D = cfg.hidden_size, c0 = j * kPanelCols, nb = std::min(kPanelCols, D - c0);
  Scratch& s = scratch();
  for (int64_t e = g.e0; e < g.e1; ++e) {
    const int64_t p0 = P.offset[size_t(e)], m = P.offset[size_t(e + 1)] - p0;
    if (m == 0) continue;
    const Weight& w2 = experts[size_t(e)].w2;  // [D, I]
    const int64_t I = w2.cols();
    s.y.resize(size_t(m * kPanelCols));
    int64_t after = e + 1;  // the next expert with rows: its panel is read next
    while (after < g.e1 && P.offset[size_t(after + 1)] == P.offset[size_t(after)]) ++after;
    const uint32_t* next = after < g.e1 ? loaded_panel(experts[size_t(after)].w2, c0) : nullptr;
    gemm_bf16_panel(m, I, h + (p0 - g.p0) * I, I, panel_of(w2, c0, nb, s.rows, s.panel), nb,
                    s.y.data(), kPanelCols, false, next);
    for (int64_t i = 0; i < m; ++i) {
      float* o = acc + int64_t(P.row[size_t(p0 + i)]) * D + c0;
      const float wt = P.weight[size_t(p0 + i)];
      const float* y = s.y.data() + i * kPanelCols;
      for (int64_t c = 0; c < nb; ++c) o[c] += wt * y[c];
    }
  }
}

// xb: every row of x in bf16 ([n, D], rounded once even when the row goes to several experts).
void run_group(const ModelConfig& cfg, const std::vector<ExpertWeights>& experts,
               const ExpertPairs& P, const Group& g, const uint16_t* xb, float* acc,
               std::vector<uint16_t>& xg, std::vector<uint16_t>& h,
               const std::function<void()>& progress) {
  const int64_t D = cfg.hidden_size, I = cfg.moe_inter;
  xg.resize(size_t(g.np * D));
  h.resize(size_t(g.np * I));
  uint16_t* xgp = xg.data();
  uint16_t* hp = h.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < g.np; ++p)
    std::memcpy(xgp + p * D, xb + int64_t(P.row[size_t(g.p0 + p)]) * D, size_t(D) * 2);
  std::vector<std::pair<int64_t, int64_t>> tasks;  // (expert, panel of I)
  for (int64_t e = g.e0; e < g.e1; ++e)
    if (P.offset[size_t(e + 1)] > P.offset[size_t(e)]) {
      MO_CHECK(experts[size_t(e)].loaded(), "pairs for expert ", e, ", not loaded on this rank");
      for (int64_t j = 0; j * kPanelCols < I; ++j) tasks.push_back({e, j});
    }
  const int64_t nt = int64_t(tasks.size());
  // Task t on thread t mod threads (neighbouring tasks are the same expert's, so the threads stay
  // even): each knows its next task, whose first panel it fetches ahead.
#pragma omp parallel
  {
    const int64_t stride = omp_get_num_threads();
    for (int64_t t = omp_get_thread_num(); t < nt; t += stride) {
      const int64_t e = tasks[size_t(t)].first, off = P.offset[size_t(e)] - g.p0;
      const uint32_t* next = nullptr;
      if (t + stride < nt) {
        const auto& [ne, nj] = tasks[size_t(t + stride)];
        next = loaded_panel(experts[size_t(ne)].w1, nj * kPanelCols);
      }
      gate_up_task(cfg, experts[size_t(e)], xgp + off * D, P.offset[size_t(e + 1)] - P.offset[size_t(e)],
                   tasks[size_t(t)].second, hp + off * I, next);
    }
  }
  if (progress) progress();
  const int64_t nd = (D + kPanelCols - 1) / kPanelCols;
#pragma omp parallel for schedule(dynamic)
  for (int64_t j = 0; j < nd; ++j) down_task(cfg, experts, P, g, hp, j, acc);
  if (progress) progress();
}

}  // namespace

int64_t ExpertPairs::max_rows() const {
  int64_t m = 0;
  for (size_t e = 0; e + 1 < offset.size(); ++e) m = std::max(m, offset[e + 1] - offset[e]);
  return m;
}

void grouped_experts_bf16(const ModelConfig& cfg, const std::vector<ExpertWeights>& experts,
                          const ExpertPairs& P, const float* x, float* acc,
                          const std::function<void()>& progress) {
  const int64_t E = int64_t(P.offset.size()) - 1;
  MO_CHECK(E <= int64_t(experts.size()), "grouped_experts_bf16: ", E, " experts' pairs, ",
           experts.size(), " experts");
  static thread_local std::vector<uint16_t> xb, xg, h;
  int64_t n = 0;  // rows of x: one past the highest row any pair names
  for (int32_t r : P.row) n = std::max<int64_t>(n, int64_t(r) + 1);
  const int64_t D = cfg.hidden_size;
  xb.resize(size_t(n * D));
  uint16_t* xbp = xb.data();
#pragma omp parallel for schedule(static) if (n * D > 65536)
  for (int64_t i = 0; i < n; ++i) rows_to_bf16(x + i * D, 1, D, D, xbp + i * D);
  for (int64_t e0 = 0; e0 < E;) {
    Group g{e0, e0, P.offset[size_t(e0)], 0};
    while (g.e1 < E && (g.e1 == e0 || P.offset[size_t(g.e1 + 1)] - g.p0 <= kGroupRows)) ++g.e1;
    g.np = P.offset[size_t(g.e1)] - g.p0;
    if (g.np > 0) run_group(cfg, experts, P, g, xbp, acc, xg, h, progress);
    e0 = g.e1;
  }
}

}  // namespace modelone
