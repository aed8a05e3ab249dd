// Every matrix-product kernel, in the spirit of llama.cpp's test-backend-ops: one registry of
// (kernel, path, stored dtype, shape class), each case checked against a double-precision
// reference over the weight's own values (stored value times block scale, element by element),
// with the tolerance of its arithmetic, in one test that prints the table of what it ran.
//   paths: openblas (sgemm), avx512 / avx512_bf16 (our kernels, as the CPU is), scalar (the
//          portable fallbacks, forced with override_cpu_features), onednn (its matmul);
//   dtypes: f32, bf16, fp8 (e4m3, 128 x 128 block scales), fp4 (e2m1, a scale per 32);
//   shapes: decode (T = 1), batch (T = 5: the GEMV kernels' rows), prefill (T = 40: the GEMMs';
//           row offset and accumulate).
// A path the CPU lacks is listed as skipped, never passed silently.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/blocks/moe.h"
#include "model/blocks/moe_grouped.h"
#include "model/blocks/weight_packing.h"
#include "model/base/cpu_features.h"
#include "model/base/dtype.h"
#include "model/io/release_quant.h"
#include "model/kernels/bf16_decode.h"
#include "model/kernels/linear.h"
#include "model/kernels/onednn_matmul.h"
#include "model/kernels/panel_weights.h"

namespace modelone {
namespace {

constexpr int64_t kN = 72, kK = 192;  // K: six FP4 scale blocks, one and a half FP8 blocks
// Every kernel sums fp32 products (exact for bf16 operands) in some order: the worst case of K
// additions and a product's rounding is (K + 2) u of sum |x * W|, u = 2^-24.
constexpr double kFp32Sums = double(kK + 2) * 0x1p-24;

struct Shape {
  const char* name;
  int64_t T, r0;
  bool accumulate;
};
const Shape kShapes[] = {{"decode", 1, 0, false}, {"batch", 5, 3, false}, {"prefill", 40, 8, true}};

Weight make(DType dt, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 0.05f);
  const int64_t rows = 2 * kPanelRows;  // room for the row offset; two whole panels when packed
  std::vector<float> v(size_t(rows * kK));
  for (auto& x : v) x = d(rng);
  if (dt == DType::F8_E4M3 || dt == DType::F4_E2M1)
    return quantize_weight("w", dt, rows, kK, v, 128);
  return make_weight("w", dt, {rows, kK}, v);
}

float bf16_round(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// W[r, c] element by element: the stored value times its block's scale (FP8: a scale per
// block_rows x block_cols block; FP4: block 1 x 32).
float weight_at(const Weight& w, int64_t r, int64_t c) {
  const float v = w.at_f32(r * w.cols() + c);
  if (!w.scale) return v;
  const int64_t per_row = (w.cols() + w.block_cols - 1) / w.block_cols;
  return v * w.scale->at_f32((r / w.block_rows) * per_row + c / w.block_cols);
}

// ref[t, n] = sum_k x[t, k] * W[r0 + n, k] in double, inputs rounded to bf16 first when `bf16`.
// mag[t, n] = sum_k |x * W|: the scale the tolerance is relative to.
void reference(const std::vector<float>& x, const Weight& w, const Shape& s, bool bf16,
               std::vector<double>* ref, std::vector<double>* mag) {
  ref->assign(size_t(s.T * kN), s.accumulate ? 1.0 : 0.0);
  mag->assign(size_t(s.T * kN), 0.0);
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t n = 0; n < kN; ++n)
      for (int64_t k = 0; k < kK; ++k) {
        float a = x[size_t(t * kK + k)], b = weight_at(w, s.r0 + n, k);
        if (bf16) a = bf16_round(a), b = bf16_round(b);
        (*ref)[size_t(t * kN + n)] += double(a) * double(b);
        (*mag)[size_t(t * kN + n)] += std::fabs(double(a) * double(b));
      }
}

// One registry row: how to run the kernel on (x, w, shape) into y, on which path, and its bound.
struct Kernel {
  std::string name, path;
  std::vector<DType> dtypes;
  bool bf16_inputs;  // its arithmetic rounds x and W to bf16
  double rel_tol;    // of sum |x * W|
  std::function<bool()> available;
  std::function<void(const std::vector<float>& x, const Weight& w, const Shape& s, float* y)> run;
};

// Runs f with the CPU reported as having no AVX-512 at all: the portable fallbacks.
template <class F>
void scalar(F&& f) {
  const CpuFeatures saved = override_cpu_features(CpuFeatures{});
  f();
  override_cpu_features(saved);
}

void run_linear(Compute c, const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
  set_compute(c);
  linear(x.data(), s.T, kK, w, s.r0, kN, y, kN, s.accumulate);
  set_compute(Compute::F32);
}

// The bf16 micro-kernels and oneDNN take bf16 operands: x and the weight rows decoded first.
using Bf16Gemm = void (*)(int64_t, int64_t, int64_t, const uint16_t*, int64_t, const uint16_t*,
                          int64_t, float*, int64_t, bool);
void run_bf16_gemm(Bf16Gemm g, const std::vector<float>& x, const Weight& w, const Shape& s,
                   float* y) {
  std::vector<uint16_t> xb(size_t(s.T * kK)), wb(size_t(kN * kK));
  rows_to_bf16(x.data(), s.T, kK, kK, xb.data());
  weight_rows_bf16(w, s.r0, kN, wb.data());
  g(s.T, kN, kK, xb.data(), kK, wb.data(), kK, y, kN, s.accumulate);
}

// C = A @ B with B [K, N]: the weight rows transposed first (attention's P @ V form).
void run_bf16_nn(const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
  std::vector<uint16_t> xb(size_t(s.T * kK)), wb(size_t(kN * kK)), wt(size_t(kK * kN));
  rows_to_bf16(x.data(), s.T, kK, kK, xb.data());
  weight_rows_bf16(w, s.r0, kN, wb.data());
  for (int64_t n = 0; n < kN; ++n)
    for (int64_t k = 0; k < kK; ++k) wt[size_t(k * kN + n)] = wb[size_t(n * kK + k)];
  gemm_bf16_nn_here(s.T, kN, kK, xb.data(), kK, wt.data(), kN, y, kN, s.accumulate);
}

// The grouped expert product's kernel: the weight rows packed 64 at a time into panels.
void run_panels(const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
  std::vector<uint16_t> xb(size_t(s.T * kK)), wb(size_t(kPanelCols * kK));
  std::vector<uint32_t> panel(size_t((kK + 1) / 2 * kPanelCols));
  rows_to_bf16(x.data(), s.T, kK, kK, xb.data());
  for (int64_t n0 = 0; n0 < kN; n0 += kPanelCols) {
    const int64_t nb = std::min(kPanelCols, kN - n0);
    weight_rows_bf16(w, s.r0 + n0, nb, wb.data());
    pack_panel_bf16(wb.data(), kK, nb, kK, panel.data());
    gemm_bf16_panel(s.T, kK, xb.data(), kK, panel.data(), nb, y + n0, kN, s.accumulate);
  }
}

// linear() over the weight repacked as at load (BF16_P64): rows [r0, r0 + 72) cut both panels.
void run_packed(Compute c, const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
  Weight p = w;
  ASSERT_TRUE(pack_weight_panels(p)) << dtype_name(w.dtype);
  run_linear(c, x, p, s, y);
}
// The same product through linear_panels itself (the portable path: set_compute would refuse).
void run_linear_panels(const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
  Weight p = w;
  ASSERT_TRUE(pack_weight_panels(p)) << dtype_name(w.dtype);
  std::vector<uint16_t> xb(size_t(s.T * kK));
  rows_to_bf16(x.data(), s.T, kK, kK, xb.data());
  linear_panels(xb.data(), s.T, kK, p, s.r0, kN, y, kN, s.accumulate);
}

void run_dot_rows(const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
  std::vector<uint16_t> xb(size_t(s.T * kK));
  rows_to_bf16(x.data(), s.T, kK, kK, xb.data());
  dot_weight_rows_bf16(xb.data(), s.T, kK, w, s.r0, kN, y, kN, s.accumulate);
}

std::vector<Kernel> registry() {
  const std::vector<DType> all = {DType::F32, DType::BF16, DType::F8_E4M3, DType::F4_E2M1};
  const std::vector<DType> narrow = {DType::BF16, DType::F8_E4M3, DType::F4_E2M1};
  auto always = [] { return true; };
  auto avx512 = [] { return cpu_features().avx512; };
  auto bf16 = [] { return cpu_features().bf16(); };
  auto f32 = [](const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
    run_linear(Compute::F32, x, w, s, y);
  };
  auto b16 = [](const std::vector<float>& x, const Weight& w, const Shape& s, float* y) {
    run_linear(Compute::BF16, x, w, s, y);
  };
  return {
      {"linear fp32: sgemm", "openblas", {DType::F32}, false, kFp32Sums, always, f32},
      {"linear fp32: widen + dot / tile", "avx512", narrow, false, kFp32Sums, avx512, f32},
      {"linear fp32: widen + dot / tile", "scalar", narrow, false, kFp32Sums, always,
       [f32](const auto& x, const Weight& w, const Shape& s, float* y) { scalar([&] { f32(x, w, s, y); }); }},
      {"linear bf16: VDPBF16PS rows / oneDNN", "avx512_bf16+onednn", all, true, kFp32Sums, bf16, b16},
      {"dot_weight_rows_bf16", "avx512_bf16", all, true, kFp32Sums, bf16, run_dot_rows},
      {"dot_weight_rows_bf16", "scalar", all, true, kFp32Sums, always,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { scalar([&] { run_dot_rows(x, w, s, y); }); }},
      {"matmul_bf16_nt", "onednn", all, true, kFp32Sums, bf16,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { run_bf16_gemm(matmul_bf16_nt, x, w, s, y); }},
      {"gemm_bf16_nt_here (micro-kernel)", "avx512_bf16", all, true, kFp32Sums, bf16,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { run_bf16_gemm(gemm_bf16_nt_here, x, w, s, y); }},
      {"gemm_bf16_nt_here (micro-kernel)", "scalar", all, true, kFp32Sums, always,
       [](const auto& x, const Weight& w, const Shape& s, float* y) {
         scalar([&] { run_bf16_gemm(gemm_bf16_nt_here, x, w, s, y); });
       }},
      {"gemm_bf16_panel (packed panels)", "avx512_bf16", all, true, kFp32Sums, bf16, run_panels},
      {"gemm_bf16_panel (packed panels)", "scalar", all, true, kFp32Sums, always,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { scalar([&] { run_panels(x, w, s, y); }); }},
      {"linear bf16: packed at load", "avx512_bf16", {DType::BF16}, true, kFp32Sums, bf16,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { run_packed(Compute::BF16, x, w, s, y); }},
      {"linear_panels (packed at load)", "scalar", {DType::BF16}, true, kFp32Sums, always,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { scalar([&] { run_linear_panels(x, w, s, y); }); }},
      {"linear fp32: packed at load", "avx512", {DType::BF16}, false, kFp32Sums, avx512,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { run_packed(Compute::F32, x, w, s, y); }},
      {"linear fp32: packed at load", "scalar", {DType::BF16}, false, kFp32Sums, always,
       [](const auto& x, const Weight& w, const Shape& s, float* y) {
         scalar([&] { run_packed(Compute::F32, x, w, s, y); });
       }},
      {"gemm_bf16_nn_here (micro-kernel)", "avx512_bf16", all, true, kFp32Sums, bf16, run_bf16_nn},
      {"gemm_bf16_nn_here (micro-kernel)", "scalar", all, true, kFp32Sums, always,
       [](const auto& x, const Weight& w, const Shape& s, float* y) { scalar([&] { run_bf16_nn(x, w, s, y); }); }},
  };
}

TEST(KernelRegistry, EveryKernelPathDtypeAndShapeAgainstDoublePrecision) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.f, 1.f);
  int ran = 0, skipped = 0;
  std::printf("%-36s %-20s %-6s %-8s %11s %9s\n", "kernel", "path", "dtype", "shape",
              "max err/mag", "bound");
  for (const Kernel& k : registry()) {
    for (DType dt : k.dtypes) {
      const Weight w = make(dt, rng);
      for (const Shape& s : kShapes) {
        if (!k.available()) {
          std::printf("%-36s %-20s %-6s %-8s %21s\n", k.name.c_str(), k.path.c_str(),
                      std::string(dtype_name(dt)).c_str(), s.name, "skipped: not on this CPU");
          ++skipped;
          continue;
        }
        std::vector<float> x(size_t(s.T * kK));
        for (auto& v : x) v = d(rng);
        std::vector<double> ref, mag;
        reference(x, w, s, k.bf16_inputs, &ref, &mag);
        std::vector<float> y(size_t(s.T * kN), s.accumulate ? 1.f : 0.f);
        k.run(x, w, s, y.data());
        double worst = 0;
        for (size_t i = 0; i < y.size(); ++i)
          worst = std::max(worst, std::fabs(double(y[i]) - ref[i]) / std::max(mag[i], 1e-30));
        std::printf("%-36s %-20s %-6s %-8s %11.2e %9.0e\n", k.name.c_str(), k.path.c_str(),
                    std::string(dtype_name(dt)).c_str(), s.name, worst, k.rel_tol);
        EXPECT_LE(worst, k.rel_tol) << k.name << " / " << k.path << " / " << dtype_name(dt)
                                    << " / " << s.name;
        ++ran;
      }
    }
  }
  std::printf("%d cases ran, %d skipped (paths this CPU lacks)\n", ran, skipped);
  EXPECT_GT(ran, 0);
}

// The grouped expert product (model/blocks/moe_grouped.h) and the per-expert products
// (expert_ffn, bf16 path: the VDPBF16PS rows for <= 8 rows, oneDNN above) against one
// double-precision FFN with x and h rounded to bf16 as both paths round them: each within the
// bf16 path's bound, 2^-8 of sum |h w2| (h may land one bf16 step apart where g and u sum in
// another order). Experts with 0, 1, 7, 13 and 40 rows, a row in several experts, D and I with
// panel tails (I = 96: a 64-column panel and a 32-column one), every stored dtype, and bf16
// experts repacked as at load (I = 192: whole panels, so gate, up and down are all packed).
struct MoeCase {
  ModelConfig cfg;
  std::vector<ExpertWeights> experts;
  ExpertPairs pairs;
  std::vector<float> x;  // [n, D]
  int64_t n = 0;
};

MoeCase moe_case(DType dt, int64_t I, std::mt19937& rng) {
  MoeCase c;
  c.cfg.hidden_size = 128;
  c.cfg.moe_inter = I;
  c.cfg.swiglu_limit = 3.0;
  const int64_t D = 128;
  const std::vector<int64_t> rows = {0, 1, 13, 40, 7};
  c.n = 40;
  std::normal_distribution<float> d(0.f, 1.f), wd(0.f, 0.1f);
  c.x.resize(size_t(c.n * D));
  for (auto& v : c.x) v = d(rng);
  auto weight = [&](int64_t r, int64_t k) {
    std::vector<float> v(size_t(r * k));
    for (auto& a : v) a = wd(rng);
    if (dt == DType::F8_E4M3 || dt == DType::F4_E2M1) return quantize_weight("w", dt, r, k, v, 128);
    return make_weight("w", dt, {r, k}, v);
  };
  c.pairs.offset = {0};
  for (int64_t e = 0; e < int64_t(rows.size()); ++e) {
    c.experts.push_back({weight(I, D), weight(D, I), weight(I, D)});
    for (int64_t i = 0; i < rows[size_t(e)]; ++i) {  // rows spread over x; several experts share
      c.pairs.row.push_back(int32_t((i * 7 + e) % c.n));
      c.pairs.weight.push_back(0.25f + 0.1f * float(e));
    }
    c.pairs.offset.push_back(int64_t(c.pairs.row.size()));
  }
  return c;
}

// acc[n, D] and mag[n, D] (sum of |w * h * w2| terms) of the double-precision reference.
void moe_reference(const MoeCase& c, std::vector<double>* acc, std::vector<double>* mag) {
  const int64_t D = c.cfg.hidden_size, I = c.cfg.moe_inter;
  const double lim = c.cfg.swiglu_limit;
  acc->assign(size_t(c.n * D), 0.0);
  mag->assign(size_t(c.n * D), 0.0);
  std::vector<double> h(static_cast<size_t>(I));
  for (size_t e = 0; e < c.experts.size(); ++e)
    for (int64_t p = c.pairs.offset[e]; p < c.pairs.offset[e + 1]; ++p) {
      const ExpertWeights& w = c.experts[e];
      const float* x = c.x.data() + int64_t(c.pairs.row[size_t(p)]) * D;
      for (int64_t i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int64_t k = 0; k < D; ++k) {
          const double xb = bf16_round(x[k]);
          g += xb * bf16_round(weight_at(w.w1, i, k));
          u += xb * bf16_round(weight_at(w.w3, i, k));
        }
        g = std::min(g, lim), u = std::clamp(u, -lim, lim);
        h[size_t(i)] = bf16_round(float(g / (1 + std::exp(-g)) * u));
      }
      const double wt = c.pairs.weight[size_t(p)];
      for (int64_t o = 0; o < D; ++o)
        for (int64_t i = 0; i < I; ++i) {
          const double t = wt * h[size_t(i)] * bf16_round(weight_at(w.w2, o, i));
          (*acc)[size_t(c.pairs.row[size_t(p)] * D + o)] += t;
          (*mag)[size_t(c.pairs.row[size_t(p)] * D + o)] += std::fabs(t);
        }
    }
}

TEST(KernelRegistry, GroupedExpertsEqualThePerExpertProducts) {
  if (!cpu_features().bf16()) GTEST_SKIP() << "the bf16 path needs AVX512-BF16 or AMX";
  std::mt19937 rng(23);
  const DType kPacked = DType::BF16_P64;
  for (DType dt : {DType::F32, DType::BF16, DType::F8_E4M3, DType::F4_E2M1, kPacked}) {
    MoeCase c = moe_case(dt == kPacked ? DType::BF16 : dt, dt == kPacked ? 192 : 96, rng);
    const int64_t D = c.cfg.hidden_size;
    std::vector<double> ref, mag;
    moe_reference(c, &ref, &mag);  // over the weights as made, before any repacking
    if (dt == kPacked) {
      LayerWeights l;
      l.experts = c.experts;
      ModelWeights mw;
      mw.layers.push_back(l);
      ASSERT_EQ(pack_expert_panels(mw).tensors, 3 * int64_t(c.experts.size()));
      c.experts = mw.layers[0].experts;
    }
    set_compute(Compute::BF16);
    std::vector<float> grouped(size_t(c.n * D), 0.f), each(size_t(c.n * D), 0.f);
    grouped_experts_bf16(c.cfg, c.experts, c.pairs, c.x.data(), grouped.data());
    std::vector<float> xe, ye;
    for (size_t e = 0; e < c.experts.size(); ++e) {
      const int64_t p0 = c.pairs.offset[e], m = c.pairs.offset[e + 1] - p0;
      xe.resize(size_t(m * D));
      ye.resize(size_t(m * D));
      for (int64_t i = 0; i < m; ++i)
        std::copy_n(c.x.data() + int64_t(c.pairs.row[size_t(p0 + i)]) * D, D, xe.data() + i * D);
      if (m > 0) expert_ffn(c.cfg, c.experts[e], xe.data(), m, ye.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t o = 0; o < D; ++o)
          each[size_t(c.pairs.row[size_t(p0 + i)] * D + o)] +=
              c.pairs.weight[size_t(p0 + i)] * ye[size_t(i * D + o)];
    }
    set_compute(Compute::F32);
    double worst_g = 0, worst_e = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      worst_g = std::max(worst_g, std::fabs(grouped[i] - ref[i]) / (mag[i] + 1e-30));
      worst_e = std::max(worst_e, std::fabs(each[i] - ref[i]) / (mag[i] + 1e-30));
    }
    const std::string name(dtype_name(dt));
    std::printf("grouped experts %-8s max err/mag %.2e (per-expert products %.2e), bound %.2e\n",
                name.c_str(), worst_g, worst_e, 1.0 / 256);
    EXPECT_LE(worst_g, 1.0 / 256) << name;
    EXPECT_LE(worst_e, 1.0 / 256) << name;
  }
}

// Repacking at load changes the order of the bytes, never a value: every reader of a weight
// (rows_f32, at_f32, weight_rows_bf16) gives the packed form's values bit for bit, and weights
// the panel kernel cannot take (not bf16, rows not a multiple of 64, odd K) stay as they are.
TEST(KernelRegistry, PackedPanelsHoldTheSameValues) {
  std::mt19937 rng(5);
  const Weight w = make(DType::BF16, rng);  // [128, 192]
  Weight p = w;
  ASSERT_TRUE(pack_weight_panels(p));
  EXPECT_EQ(p.dtype, DType::BF16_P64);
  EXPECT_NE(p.data, w.data);
  const int64_t R = w.rows(), K = w.cols();
  std::vector<float> a(size_t(R * K)), b(size_t(R * K));
  w.rows_f32(0, R, a.data());
  p.rows_f32(0, R, b.data());
  EXPECT_EQ(a, b);
  std::vector<uint16_t> ha(size_t(5 * K)), hb(size_t(5 * K));
  weight_rows_bf16(w, 61, 5, ha.data());  // across the panels' seam
  weight_rows_bf16(p, 61, 5, hb.data());
  EXPECT_EQ(ha, hb);
  for (int64_t i : {int64_t(0), int64_t(1), K * 63 + 5, R * K - 1}) EXPECT_EQ(w.at_f32(i), p.at_f32(i)) << i;
  Weight f = make(DType::F32, rng), q = make(DType::F8_E4M3, rng);
  EXPECT_FALSE(pack_weight_panels(f));
  EXPECT_FALSE(pack_weight_panels(q));
  std::vector<float> v(size_t(72 * K), 0.5f);
  Weight odd_rows = make_weight("w", DType::BF16, {72, K}, v);
  EXPECT_FALSE(pack_weight_panels(odd_rows));
  EXPECT_EQ(odd_rows.dtype, DType::BF16);
}

}  // namespace
}  // namespace modelone
