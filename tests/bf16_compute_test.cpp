// The bf16 compute path against exact arithmetic and against the fp32 path, on every shape class
// linear() sees (T = 1 to 8 through the VDPBF16PS kernel, larger T through oneDNN; K with and
// without a 32-value tail; row offsets; accumulate) and every stored weight type (bf16, fp32,
// FP8 at block 128 and 32 with short edge blocks, FP4). The CPU-feature dispatch is tested by
// forcing the fallbacks.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "model/blocks/attention.h"
#include "model/kernels/bf16_decode.h"
#include "model/base/check.h"
#include "model/base/cpu_features.h"
#include "model/kernels/linear.h"
#include "model/blocks/indexer.h"
#include "model/cache/layer_cache.h"
#include "model/kernels/onednn_matmul.h"
#include "model/io/release_quant.h"

namespace modelone {
namespace {

struct Kind {
  const char* name;
  DType dtype;
  int64_t block;
};
const Kind kKinds[] = {{"bf16", DType::BF16, 0},
                       {"fp32", DType::F32, 0},
                       {"fp8_b128", DType::F8_E4M3, 128},
                       {"fp8_b32", DType::F8_E4M3, 32},
                       {"fp4", DType::F4_E2M1, 0}};

Weight make(const Kind& k, int64_t N, int64_t K, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 0.05f);
  std::vector<float> v(size_t(N * K));
  for (auto& x : v) x = d(rng);
  if (k.dtype == DType::F8_E4M3 || k.dtype == DType::F4_E2M1)
    return quantize_weight(k.name, k.dtype, N, K, v, k.block ? k.block : 128);
  return make_weight(k.name, k.dtype, {N, K}, v);
}

bool has_bf16() { return cpu_features().bf16(); }

// Restores the detected features when a test that forces fallbacks ends.
struct Features {
  CpuFeatures saved = cpu_features();
  explicit Features(const CpuFeatures& f) { override_cpu_features(f); }
  ~Features() { override_cpu_features(saved); }
};

TEST(Bf16Compute, ActivationRoundingMatchesScalar) {
  std::vector<float> x = {0.f, -0.f, 1.f, 1.00390625f /* tie, even stays */, 1.01171875f /* tie, odd goes up */,
                          3.4e38f, -3.4e38f, INFINITY, -INFINITY, NAN, 1e-40f /* subnormal */,
                          -7.3e-39f, 65504.f, 1.f / 3.f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-100.f, 100.f);
  for (int i = 0; i < 1000; ++i) x.push_back(u(rng));
  std::vector<uint16_t> a(x.size()), b(x.size());
  rows_to_bf16(x.data(), 1, int64_t(x.size()), int64_t(x.size()), a.data());
  {
    Features none(CpuFeatures{});
    rows_to_bf16(x.data(), 1, int64_t(x.size()), int64_t(x.size()), b.data());
  }
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(a[i], f32_to_bf16(x[i])) << "x = " << x[i];
    EXPECT_EQ(b[i], f32_to_bf16(x[i])) << "x = " << x[i];
  }
}

TEST(Bf16Compute, WeightDecodeIsExactForReleaseTypes) {
  std::mt19937 rng(1);
  // 200 rows, 192 columns: a short 64-wide edge block at block 128, a short row block too.
  for (const Kind& k : kKinds) {
    const int64_t N = 200, K = k.dtype == DType::F4_E2M1 ? 192 : 200;
    const Weight w = make(k, N, K, rng);
    std::vector<float> f(size_t(N * K));
    w.rows_f32(0, N, f.data());
    for (bool vector : {true, false}) {
      Features f1(vector ? cpu_features() : CpuFeatures{});
      for (int64_t r0 : {int64_t(0), int64_t(3), int64_t(130)}) {
        const int64_t n = std::min<int64_t>(50, N - r0);
        std::vector<uint16_t> got(size_t(n * K));
        weight_rows_bf16(w, r0, n, got.data());
        int bad = 0;
        for (int64_t i = 0; i < n * K; ++i) {
          const float want = f[size_t(r0 * K + i)];
          // Release types (and bf16) are exact in bf16; fp32 rounds to nearest even.
          if (got[size_t(i)] != f32_to_bf16(want)) ++bad;
          if (k.dtype != DType::F32 && bf16_to_f32(got[size_t(i)]) != want) ++bad;
        }
        EXPECT_EQ(bad, 0) << k.name << " rows " << r0 << "+" << n << (vector ? " vector" : " scalar");
      }
    }
  }
}

// y from the bf16 path against (a) the exact sum of the bf16-rounded operands, in double, and
// (b) the fp32 path. (a) leaves only fp32 summation error: within 1e-5 of sum |x w|. (b) adds
// the rounding of x (and of fp32 weights) to bf16, at most 2^-9 relative each: within 2^-8 of
// sum |x w|.
void check_products(const Kind& k, int64_t T, int64_t N, int64_t K, int64_t r0, bool accumulate,
                     std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << k.name << " T=" << T << " N=" << N << " K=" << K << " r0="
                                  << r0 << (accumulate ? " accumulate" : ""));
  const Weight w = make(k, r0 + N + 3, K, rng);
  std::normal_distribution<float> d(0.f, 1.f);
  const int64_t ldx = K + 5, ldy = N + 7;
  std::vector<float> x(size_t(T * ldx)), y0(size_t(T * ldy));
  for (auto& v : x) v = d(rng);
  for (auto& v : y0) v = d(rng);
  std::vector<float> yb = y0, yf = y0;
  linear_bf16(x.data(), T, ldx, w, r0, N, yb.data(), ldy, accumulate);
  linear_fp32(x.data(), T, ldx, w, r0, N, yf.data(), ldy, accumulate);
  std::vector<float> wf(size_t(N * K));
  w.rows_f32(r0, N, wf.data());
  double worst_exact = 0, worst_fp32 = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      double exact = accumulate ? y0[size_t(t * ldy + n)] : 0.0, mag = 0;
      for (int64_t j = 0; j < K; ++j) {
        const double p = double(round_bf16(x[size_t(t * ldx + j)])) * double(round_bf16(wf[size_t(n * K + j)]));
        exact += p;
        mag += std::fabs(p);
      }
      const double got = yb[size_t(t * ldy + n)];
      worst_exact = std::max(worst_exact, std::fabs(got - exact) / (mag + 1e-30));
      worst_fp32 = std::max(worst_fp32, std::fabs(got - yf[size_t(t * ldy + n)]) / (mag + 1e-30));
    }
  EXPECT_LE(worst_exact, 1e-5);
  EXPECT_LE(worst_fp32, 1.0 / 256);
  // Rows past the product are untouched (ldy padding).
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = N; n < ldy; ++n) ASSERT_EQ(yb[size_t(t * ldy + n)], y0[size_t(t * ldy + n)]);
}

TEST(Bf16Compute, EveryShapeClassAndWeightType) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX (" << cpu_features().str() << ")";
  std::mt19937 rng(2);
  struct NK { int64_t N, K; };
  // K: a multiple of 32, one with a 8-value tail, an FP8 edge block; N: odd, tiny, one full 64-row
  // GEMV group and more.
  const NK shapes[] = {{64, 128}, {37, 96}, {130, 200}, {5, 1024}, {257, 256}};
  for (const Kind& k : kKinds)
    for (const NK& s : shapes) {
      if (k.dtype == DType::F4_E2M1 && s.K % 32) continue;  // FP4 rows are whole 32-value groups
      for (int64_t T : {1, 2, 3, 4, 5, 8, 9, 33})
        check_products(k, T, s.N, s.K, T % 2 ? 0 : 3, T == 3 || T == 9, rng);
    }
}

TEST(Bf16Compute, ProjectionSizedProducts) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  std::mt19937 rng(3);
  for (const Kind& k : kKinds) {
    check_products(k, 1, 512, 2048, 0, false, rng);
    check_products(k, 96, 300, 1024, 64, true, rng);
  }
}

// matmul_bf16_nt from inside a parallel loop (2 threads) runs on the calling thread: every
// product exact to fp32 summation, for M, N, K remainders of the micro-kernel's blocks.
TEST(Bf16Compute, MatmulInsideParallelLoops) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  struct Case { int64_t M, N, K; bool acc; };
  const Case cases[] = {{64, 1024, 128, false}, {7, 70, 33, true}, {1, 1, 1, false},
                        {13, 200, 256, true}, {6, 64, 2, false}, {5, 17, 129, false}};
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.f, 1.f);
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.M << "x" << c.N << "x" << c.K);
    std::vector<uint16_t> a(size_t(c.M * (c.K + 3))), b(size_t(c.N * (c.K + 1)));
    for (auto& v : a) v = f32_to_bf16(d(rng));
    for (auto& v : b) v = f32_to_bf16(d(rng));
    const int64_t ldc = c.N + 2;
    std::vector<float> c0(size_t(c.M * ldc));
    for (auto& v : c0) v = d(rng);
    constexpr int kCopies = 8;
    std::vector<std::vector<float>> out(kCopies, c0);
    const int before = omp_get_max_threads();
    omp_set_num_threads(2);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < kCopies; ++i)
      matmul_bf16_nt(c.M, c.N, c.K, a.data(), c.K + 3, b.data(), c.K + 1, out[size_t(i)].data(), ldc, c.acc);
    omp_set_num_threads(before);
    double worst = 0;
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) {
        double e = c.acc ? c0[size_t(i * ldc + j)] : 0.0, mag = std::fabs(e);
        for (int64_t k = 0; k < c.K; ++k) {
          const double p = double(bf16_to_f32(a[size_t(i * (c.K + 3) + k)])) * bf16_to_f32(b[size_t(j * (c.K + 1) + k)]);
          e += p;
          mag += std::fabs(p);
        }
        for (const auto& o : out) worst = std::max(worst, std::fabs(o[size_t(i * ldc + j)] - e) / (mag + 1e-30));
      }
    EXPECT_LE(worst, 1e-6);
    for (const auto& o : out)
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = c.N; j < ldc; ++j) ASSERT_EQ(o[size_t(i * ldc + j)], c0[size_t(i * ldc + j)]);
  }
}

// A @ B with B stored [K, N] (the attention cores' P @ V), exact to fp32 summation.
TEST(Bf16Compute, MicroKernelNN) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  std::mt19937 rng(10);
  std::normal_distribution<float> d(0.f, 1.f);
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{64, 512, 1152}, {7, 70, 33}, {1, 16, 1}}) {
    std::vector<uint16_t> a(size_t(M * K)), b(size_t(K * (N + 5)));
    for (auto& v : a) v = f32_to_bf16(d(rng));
    for (auto& v : b) v = f32_to_bf16(d(rng));
    std::vector<float> c(size_t(M * N));
    gemm_bf16_nn_here(M, N, K, a.data(), K, b.data(), N + 5, c.data(), N, false);
    double worst = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double e = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double p = double(bf16_to_f32(a[size_t(i * K + k)])) * bf16_to_f32(b[size_t(k * (N + 5) + j)]);
          e += p;
          mag += std::fabs(p);
        }
        worst = std::max(worst, std::fabs(c[size_t(i * N + j)] - e) / (mag + 1e-30));
      }
    EXPECT_LE(worst, 1e-6) << M << "x" << N << "x" << K;
  }
}

// A @ B^T on the calling thread with B's pairs packed in registers (even K and ldb: the 16 x 16
// transpose, columns past N zero) and by the scalar loop (odd K or ldb), exact to fp32 summation.
TEST(Bf16Compute, MicroKernelNTPackings) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  std::mt19937 rng(12);
  std::normal_distribution<float> d(0.f, 1.f);
  for (auto [M, N, K, ldb] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{5, 70, 64, 64}, {3, 130, 96, 98},
                              {1, 1, 2, 2}, {6, 64, 34, 40}, {7, 20, 33, 34}, {2, 17, 40, 41}}) {
    std::vector<uint16_t> a(size_t(M * K)), b(size_t(N * ldb));
    for (auto& v : a) v = f32_to_bf16(d(rng));
    for (auto& v : b) v = f32_to_bf16(d(rng));
    std::vector<float> c(size_t(M * N));
    gemm_bf16_nt_here(M, N, K, a.data(), K, b.data(), ldb, c.data(), N, false);
    double worst = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double e = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double p = double(bf16_to_f32(a[size_t(i * K + k)])) * bf16_to_f32(b[size_t(j * ldb + k)]);
          e += p;
          mag += std::fabs(p);
        }
        worst = std::max(worst, std::fabs(c[size_t(i * N + j)] - e) / (mag + 1e-30));
      }
    EXPECT_LE(worst, 1e-6) << M << "x" << N << "x" << K << " ldb " << ldb;
  }
}

// One query's attention core on the bf16 path against the same math in double over the bf16
// operands: the probabilities are rounded to bf16 before P @ V, at most 2^-9 of each, so o is held
// to 2^-8 of sum_s p_s |k_s|; the running max and the sum to 1e-5.
TEST(Bf16Compute, AttentionCore) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  const int64_t nh = 8, Dh = 96, nw = 37, nc = 70, S = nw + nc;
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> q(static_cast<size_t>(nh * Dh)), kw(static_cast<size_t>(nw * Dh)),
      kc(static_cast<size_t>(nc * Dh));
  for (auto* v : {&q, &kw, &kc})
    for (auto& x : *v) x = d(rng);
  std::vector<float> o(static_cast<size_t>(nh * Dh)), mx(static_cast<size_t>(nh)),
      sum(static_cast<size_t>(nh)), logits;
  set_compute(Compute::BF16);
  attn_partial(q.data(), nh, Dh, kw.data(), nw, kc.data(), nc, o.data(), mx.data(), sum.data(), logits);
  set_compute(Compute::F32);
  auto key = [&](int64_t s, int64_t j) { return double(round_bf16(s < nw ? kw[size_t(s * Dh + j)] : kc[size_t((s - nw) * Dh + j)])); };
  for (int64_t h = 0; h < nh; ++h) {
    std::vector<double> l(static_cast<size_t>(S));
    double m = -1e300;
    for (int64_t s = 0; s < S; ++s) {
      double v = 0;
      for (int64_t j = 0; j < Dh; ++j) v += double(round_bf16(q[size_t(h * Dh + j)])) * key(s, j);
      l[size_t(s)] = v / std::sqrt(double(Dh));
      m = std::max(m, l[size_t(s)]);
    }
    double z = 0;
    for (auto& v : l) z += (v = std::exp(v - m));
    EXPECT_NEAR(mx[size_t(h)], m, 1e-5 * std::max(1.0, std::fabs(m)));
    EXPECT_NEAR(sum[size_t(h)], z, 1e-5 * z);
    for (int64_t j = 0; j < Dh; ++j) {
      double e = 0, mag = 0;
      for (int64_t s = 0; s < S; ++s) {
        e += l[size_t(s)] * key(s, j);
        mag += l[size_t(s)] * std::fabs(key(s, j));
      }
      EXPECT_NEAR(o[size_t(h * Dh + j)], e, mag / 256 + 1e-6) << "head " << h << " dim " << j;
    }
  }
}

TEST(Bf16Compute, MatmulPrimitivesAreKept) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  std::mt19937 rng(4);
  const Weight w = make(kKinds[0], 64, 128, rng);
  std::vector<float> x(size_t(20 * 128), 0.5f), y(size_t(20 * 64));
  linear_bf16(x.data(), 20, 128, w, 0, 64, y.data(), 64);
  const int64_t made = matmul_bf16_primitives();
  for (int i = 0; i < 3; ++i) linear_bf16(x.data(), 20, 128, w, 0, 64, y.data(), 64);
  EXPECT_EQ(matmul_bf16_primitives(), made);
}

TEST(Bf16Compute, DispatchFallsBackWithoutTheFeatures) {
  Features none(CpuFeatures{});
  EXPECT_EQ(default_compute(), Compute::F32);
  try {
    set_compute(Compute::BF16);
    FAIL() << "bf16 accepted on a CPU without it";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--compute bf16 needs a CPU with AVX512-BF16 or AMX; this "
                                         "one has: none"), std::string::npos) << e.what();
  }
  EXPECT_EQ(compute_mode(), Compute::F32);
  // The kernels' portable paths give the vector paths' values (sums to fp32 rounding).
  std::mt19937 rng(6);
  for (const Kind& k : kKinds) {
    const Weight w = make(k, 20, 96, rng);
    std::vector<uint16_t> xb(size_t(3 * 96));
    for (auto& v : xb) v = f32_to_bf16(std::normal_distribution<float>(0.f, 1.f)(rng));
    std::vector<float> scalar(60), vec(60);
    dot_weight_rows_bf16(xb.data(), 3, 96, w, 0, 20, scalar.data(), 20, false);
    override_cpu_features(none.saved);
    dot_weight_rows_bf16(xb.data(), 3, 96, w, 0, 20, vec.data(), 20, false);
    override_cpu_features(CpuFeatures{});
    for (size_t i = 0; i < scalar.size(); ++i) EXPECT_NEAR(scalar[i], vec[i], 1e-5f) << k.name << " " << i;
  }
}

// The indexer's scoring on the bf16 path (q and keys fed as bf16: bf16 keys as stored, fp8 keys
// decoded exactly, fp32 keys rounded): every candidate's score against the same formula in
// double over the bf16 operands, for a key count that leaves a short last tile.
TEST(Bf16Compute, IndexerScores) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  ModelConfig cfg;
  cfg.index_n_heads = 16;
  cfg.index_head_dim = 128;
  cfg.index_topk = 6000;  // every key a candidate: all scores are checked
  cfg.csa_rate = 4;
  const int64_t nI = 16, Di = 128, n = 5100;  // five tiles, the last one short
  std::mt19937 rng(8);
  std::normal_distribution<float> d(0.f, 1.f);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);  // the tiles run in a parallel loop: the scores must not depend on it
  std::vector<float> q(static_cast<size_t>(nI * Di)), w(static_cast<size_t>(nI)),
      keys(static_cast<size_t>(n * Di));
  for (auto& v : q) v = d(rng);
  for (auto& v : w) v = d(rng);
  for (auto& v : keys) v = d(rng);
  set_compute(Compute::BF16);
  for (DType dt : {DType::BF16, DType::F8_E4M3, DType::F32}) {
    SCOPED_TRACE(dtype_name(dt));
    EntryStore store;
    store.rows = KvStore(dt, Di);
    store.append(keys.data(), n, int64_t(0));
    std::vector<float> stored(size_t(n * Di));
    store.rows.read(0, n, stored.data());
    std::vector<Candidate> got;
    indexer_candidates(cfg, q.data(), w.data(), 4 * n, store, &got);
    ASSERT_EQ(int64_t(got.size()), n);
    double worst = 0;
    for (const Candidate& c : got) {
      double score = 0, mag = 0;
      for (int64_t h = 0; h < nI; ++h) {
        double l = 0, lm = 0;
        for (int64_t j = 0; j < Di; ++j) {
          const double p = double(round_bf16(q[size_t(h * Di + j)])) *
                           double(round_bf16(stored[size_t(c.index * Di + j)]));
          l += p;
          lm += std::fabs(p);
        }
        const double sw = w[size_t(h)] / std::sqrt(double(Di));
        score += std::max(l, 0.0) * sw;
        mag += lm * std::fabs(sw);
      }
      worst = std::max(worst, std::fabs(c.score - score) / mag);
    }
    EXPECT_LE(worst, 1e-5);
  }
  // Prefill's selection over fp32 keys for a few positions: the same top-k as the decode-time
  // candidates over the same keys (both score on the bf16 path).
  cfg.index_topk = 64;
  IndexerQueries iq;
  iq.q = q;
  iq.w = w;
  for (auto& v : iq.w) v *= std::sqrt(float(nI));  // indexer_select takes w as indexer_queries makes it
  const int64_t positions[] = {4 * 100 + 1, 4 * 1500 + 3, 4 * n - 1};
  for (int64_t p : positions) {
    std::vector<int32_t> top(64), count(1);
    indexer_select(cfg, iq, 1, &p, keys.data(), n, top.data(), count.data());
    EntryStore store;
    store.rows = KvStore(DType::F32, Di);
    store.append(keys.data(), n, int64_t(0));
    std::vector<Candidate> c;
    indexer_candidates(cfg, iq.q.data(), iq.w.data(), p, store, &c);
    ASSERT_EQ(int64_t(c.size()), count[0]);
    for (int64_t i = 0; i < count[0]; ++i) EXPECT_EQ(top[size_t(i)], c[size_t(i)].index) << "pos " << p;
  }
  set_compute(Compute::F32);
  omp_set_num_threads(threads);
}

// A batched decode step reads a CSA layer's index keys as stored (KvStore::view_bf16, zero rows to
// the next 64) instead of widening the store to fp32 and rounding it back: the same picks, in
// the same order, from bf16 and fp8 stores, at key counts on and off a multiple of 64.
TEST(Bf16Compute, IndexerSelectFromStoredKeys) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  ModelConfig cfg;
  cfg.index_n_heads = 16;
  cfg.index_head_dim = 32;
  cfg.index_topk = 8;
  cfg.csa_rate = 4;
  const int64_t nI = 16, Di = 32, T = 3;
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.f, 1.f);
  IndexerQueries iq;
  iq.q.resize(size_t(T * nI * Di));
  iq.w.resize(size_t(T * nI));
  for (auto& v : iq.q) v = d(rng);
  for (auto& v : iq.w) v = d(rng);
  set_compute(Compute::BF16);
  for (DType dt : {DType::BF16, DType::F8_E4M3})
    for (int64_t n : {5, 64, 130}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " keys: " + std::to_string(n));
      std::vector<float> keys(size_t(n * Di));
      for (auto& v : keys) v = d(rng);
      EntryStore store;
      store.rows = KvStore(dt, Di);
      store.append(keys.data(), n, int64_t(0));
      std::vector<float> widened;
      const float* kf = store.rows.view(0, n, widened);
      std::vector<uint16_t> tmp;
      const uint16_t* kb = store.rows.view_bf16(0, n, (n + 63) / 64 * 64, tmp);
      const int64_t pos[T] = {4 * n - 1, 4 * n + 7, 2 * n + 1};  // all keys, all, about half
      std::vector<int32_t> want(size_t(T * 8), -1), got(size_t(T * 8), -1), cw(T), cg(T);
      indexer_select(cfg, iq, T, pos, kf, n, want.data(), cw.data());
      indexer_select_bf16(cfg, iq, T, pos, kb, n, got.data(), cg.data());
      EXPECT_EQ(cg, cw);
      EXPECT_EQ(got, want);
      EXPECT_EQ(cw[0], std::min<int64_t>(8, n));
    }
  set_compute(Compute::F32);
}

TEST(Bf16Compute, ModeSwitchesLinear) {
  if (!has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX";
  std::mt19937 rng(7);
  const Weight w = make(kKinds[1], 16, 64, rng);  // fp32 weights: the two modes must differ
  std::vector<float> x(64, 0.3333333f), a(16), b(16), c(16);
  set_compute(Compute::BF16);
  linear(x.data(), 1, w, a.data());
  linear_bf16(x.data(), 1, 64, w, 0, 16, b.data(), 16);
  set_compute(Compute::F32);
  linear(x.data(), 1, w, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

}  // namespace
}  // namespace modelone
