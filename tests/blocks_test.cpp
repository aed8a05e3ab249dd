// Blocks against naive references written from the math (not from the implementation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "model/blocks/compressor.h"
#include "model/kernels/linear.h"
#include "model/blocks/indexer.h"
#include "model/kernels/elementwise.h"
#include "model/blocks/mhc.h"
#include "model/blocks/moe.h"
#include "model/kernels/rope.h"
#include "model/io/synthetic.h"
#include "model/io/weight_tensor.h"

namespace modelone {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float std = 1.f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, std);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// The same algorithm in double precision: softmax rows + eps, a column pass, then
// (iters - 1) row/column passes, each dividing by (sum + eps).
std::vector<double> naive_sinkhorn(const std::vector<float>& logits, int n, int iters, double eps) {
  std::vector<double> m(logits.begin(), logits.end());
  for (int r = 0; r < n; ++r) {
    double mx = -1e300, s = 0;
    for (int c = 0; c < n; ++c) mx = std::max(mx, m[size_t(r * n + c)]);
    for (int c = 0; c < n; ++c) s += std::exp(m[size_t(r * n + c)] - mx);
    for (int c = 0; c < n; ++c) m[size_t(r * n + c)] = std::exp(m[size_t(r * n + c)] - mx) / s + eps;
  }
  auto cols = [&] {
    for (int c = 0; c < n; ++c) {
      double s = 0;
      for (int r = 0; r < n; ++r) s += m[size_t(r * n + c)];
      for (int r = 0; r < n; ++r) m[size_t(r * n + c)] /= s + eps;
    }
  };
  auto rows = [&] {
    for (int r = 0; r < n; ++r) {
      double s = 0;
      for (int c = 0; c < n; ++c) s += m[size_t(r * n + c)];
      for (int c = 0; c < n; ++c) m[size_t(r * n + c)] /= s + eps;
    }
  };
  cols();
  for (int i = 1; i < iters; ++i) {
    rows();
    cols();
  }
  return m;
}

TEST(Synthetic, AnySliceMatchesTheWhole) {
  // A rank that makes only elements [a, b) of a tensor gets exactly those of the full tensor.
  const Init init{0.f, 0.02f};
  const uint64_t h = name_hash("model.layers.3.ffn.experts.7.w1.weight");
  std::vector<float> all(1000), part(300);
  synth_fill(42, h, init, 0, 1000, all.data());
  synth_fill(42, h, init, 517, 817, part.data());
  for (int i = 0; i < 300; ++i) EXPECT_EQ(part[size_t(i)], all[size_t(517 + i)]);
  double m = 0, v = 0;
  for (float x : all) m += x / 1000.0;
  for (float x : all) v += (x - m) * (x - m) / 1000.0;
  EXPECT_NEAR(std::sqrt(v), 0.02, 0.003);
  std::vector<float> other(1000);
  synth_fill(43, h, init, 0, 1000, other.data());
  EXPECT_NE(other, all) << "the seed changes the values";
  std::vector<int64_t> t(200 * 6);
  synth_tid2eid(1, h, 16, 6, 0, 200, t.data());
  for (int r = 0; r < 200; ++r) {
    std::set<int64_t> s(t.begin() + r * 6, t.begin() + r * 6 + 6);
    EXPECT_EQ(s.size(), 6u) << "distinct experts per token";
    EXPECT_LT(*s.rbegin(), 16);
  }
}

// The lanes of sinkhorn_many are the scalar sinkhorn bit for bit: 37 matrices (two full blocks
// of 16 and a short one), hc 4 and 3, logits large enough that the softmax saturates some rows.
TEST(Sinkhorn, ManyAtOnceMatchesOneByOneExactly) {
  for (int hc : {4, 3}) {
    const int64_t T = 37, n = hc * hc;
    auto many = randn(size_t(T * n), 7, 6.f);
    auto one = many;
    sinkhorn_many(many.data(), T, hc, 20, 1e-6f);
    for (int64_t t = 0; t < T; ++t) sinkhorn(one.data() + t * n, hc, 20, 1e-6f);
    for (size_t i = 0; i < many.size(); ++i)
      ASSERT_EQ(many[i], one[i]) << "hc " << hc << ", matrix " << i / size_t(n) << ", element " << i % size_t(n);
  }
}

TEST(Sinkhorn, MatchesNaiveAndIsDoublyStochastic) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto logits = randn(16, seed, 1.f);
    auto m = logits;
    sinkhorn(m.data(), 4, 20, 1e-6f);
    const auto ref = naive_sinkhorn(logits, 4, 20, 1e-6);
    for (size_t i = 0; i < 16; ++i) EXPECT_NEAR(m[i], ref[i], 1e-6) << seed;
    // Run to convergence: every row and column sums to 1 (up to the eps floor).
    auto conv = logits;
    sinkhorn(conv.data(), 4, 200, 1e-6f);
    for (int i = 0; i < 4; ++i) {
      float row = 0, col = 0;
      for (int j = 0; j < 4; ++j) {
        row += conv[size_t(i * 4 + j)];
        col += conv[size_t(j * 4 + i)];
        EXPECT_GT(conv[size_t(i * 4 + j)], 0.f);
      }
      EXPECT_NEAR(col, 1.f, 1e-5f);
      EXPECT_NEAR(row, 1.f, 1e-5f);
    }
  }
}

TEST(Gemm, WidenedBf16MatchesNaive) {
  const int64_t K = 300, N = 77;
  for (int64_t T : {1, 5, 9, 64}) {
    auto wv = randn(size_t(N * K), 1);
    Weight w = make_weight("w", DType::BF16, {N, K}, wv);
    auto x = randn(size_t(T * K), 2);
    std::vector<float> y(static_cast<size_t>(T * N));
    linear(x.data(), T, w, y.data());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0;
        for (int64_t k = 0; k < K; ++k) ref += double(x[size_t(t * K + k)]) * round_bf16(wv[size_t(n * K + k)]);
        EXPECT_NEAR(y[size_t(t * N + n)], ref, 1e-3) << T;
      }
  }
}

TEST(Rope, YarnMatchesFormula) {
  RopeParams p;
  p.type = RopeParams::Type::Yarn;
  p.theta = 160000;
  p.dim = 64;
  p.factor = 16;
  p.original_max_position = 65536;
  Rope r(p);
  // Ramp bounds: floor/ceil of dim*ln(L/(2*pi*b)) / (2 ln theta) for b = 32 and 1.
  auto cd = [&](double b) { return 64 * std::log(65536 / (b * 2 * M_PI)) / (2 * std::log(160000.0)); };
  const double lo = std::floor(cd(32)), hi = std::ceil(cd(1));
  for (int i = 0; i < 32; ++i) {
    const double base = 1.0 / std::pow(160000.0, 2.0 * i / 64);
    const double ramp = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
    const double want = base / 16 * ramp + base * (1 - ramp);
    EXPECT_NEAR(r.inv_freq()[size_t(i)], want, 1e-6 * base) << i;
  }
  // Rotation then inverse rotation is the identity; only the trailing dims move.
  auto x = randn(2 * 80, 3), y = x;
  Rope r2({RopeParams::Type::Default, 10000, 16});
  r2.apply(y.data(), 2, 80, 1234);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(y[size_t(i)], x[size_t(i)]);
  r2.apply(y.data(), 2, 80, 1234, true);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-5);
}

// Naive compressor: entry w pools rows of window w (HCA), or series a of window w-1 and series
// b of window w (CSA), by a per-channel softmax of gate + ape, then norm and RoPE at w * m.
std::vector<float> naive_entries(const std::vector<float>& kv, const std::vector<float>& gate,
                                 const std::vector<float>& ape, const std::vector<float>& norm,
                                 int64_t T, int64_t m, int64_t W, bool csa, const Rope& rope) {
  const int64_t pw = csa ? 2 * W : W, n = T / m;
  std::vector<float> out(static_cast<size_t>(n * W));
  for (int64_t w = 0; w < n; ++w) {
    float* e = out.data() + w * W;
    for (int64_t c = 0; c < W; ++c) {
      std::vector<std::pair<float, float>> rows;  // (logit, value)
      for (int64_t r = 0; r < m; ++r) {
        if (csa && w > 0) {
          const int64_t t = (w - 1) * m + r;
          rows.push_back({gate[size_t(t * pw + c)] + ape[size_t(r * pw + c)], kv[size_t(t * pw + c)]});
        }
        const int64_t t = w * m + r, off = csa ? W : 0;
        rows.push_back({gate[size_t(t * pw + off + c)] + ape[size_t(r * pw + off + c)],
                        kv[size_t(t * pw + off + c)]});
      }
      double mx = -1e30, den = 0, num = 0;
      for (auto& [l, v] : rows) mx = std::max(mx, double(l));
      for (auto& [l, v] : rows) {
        den += std::exp(l - mx);
        num += std::exp(l - mx) * v;
      }
      e[c] = float(num / den);
    }
    rms_norm(e, W, 1e-6f, norm.data());
    rope.apply(e, 1, W, w * m);
  }
  return out;
}

class CompressorTest : public ::testing::TestWithParam<bool> {};

TEST_P(CompressorTest, WindowsMatchNaiveInAnyChunking) {
  const bool csa = GetParam();
  const int64_t m = 4, W = 16, pw = csa ? 2 * W : W, T = 29;
  const Rope rope({RopeParams::Type::Default, 10000, 8});
  CompressorWeights w;
  auto ape = randn(size_t(m * pw), 5), norm = randn(size_t(W), 6, 0.1f);
  for (auto& v : norm) v += 1.f;
  w.ape = make_weight("ape", DType::F32, {m, pw}, ape);
  w.norm = make_weight("norm", DType::F32, {W}, norm);
  auto kv = randn(size_t(T * pw), 7), gate = randn(size_t(T * pw), 8);
  const auto want = naive_entries(kv, gate, ape, norm, T, m, W, csa, rope);
  for (int64_t chunk : {1, 3, 4, 29}) {  // decode-style, odd pieces, window-sized, whole prompt
    CompressorState st = compressor_state(m, W, csa);
    EntryStore out;
    out.rows = KvStore(DType::F32, W);
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
      const int64_t n = std::min(chunk, T - t0);
      compressor_feed(st, w, rope, 1e-6f, kv.data() + t0 * pw, gate.data() + t0 * pw, n, out);
      EXPECT_EQ(out.size(), (t0 + n) / m) << "an entry appears exactly when its window closes";
    }
    for (int64_t e = 0; e < out.size(); ++e) EXPECT_EQ(out.index[size_t(e)], e);
    std::vector<float> got(static_cast<size_t>(out.size() * W));
    out.rows.read(0, out.size(), got.data());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << chunk << " " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(CsaAndHca, CompressorTest, ::testing::Values(true, false));

TEST(Indexer, CausalTopK) {
  ModelConfig cfg;
  cfg.index_n_heads = 16;
  cfg.index_head_dim = 8;
  cfg.index_topk = 3;
  cfg.csa_rate = 4;
  const int64_t T = 40, nI = 16, Di = 8, E = T / 4;
  IndexerQueries iq;
  iq.q = randn(size_t(T * nI * Di), 11);
  iq.w = randn(size_t(T * nI), 12);
  auto kf = randn(size_t(E * Di), 13);
  std::vector<int64_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = t;
  std::vector<int32_t> top(static_cast<size_t>(T * 3)), count(static_cast<size_t>(T));
  indexer_select(cfg, iq, T, pos.data(), kf.data(), E, top.data(), count.data());
  for (int64_t t = 0; t < T; ++t) {
    const int64_t visible = (t + 1) / 4;  // windows closed at or before t
    ASSERT_EQ(count[size_t(t)], std::min<int64_t>(3, visible)) << t;
    // Naive scores over the visible entries, then the best three.
    std::vector<float> s(static_cast<size_t>(visible));
    for (int64_t e = 0; e < visible; ++e)
      for (int64_t h = 0; h < nI; ++h) {
        float dot = 0;
        for (int64_t d = 0; d < Di; ++d) dot += iq.q[size_t((t * nI + h) * Di + d)] * kf[size_t(e * Di + d)];
        s[size_t(e)] += std::max(dot, 0.f) / std::sqrt(8.f) * iq.w[size_t(t * nI + h)];
      }
    std::vector<int32_t> order(static_cast<size_t>(visible));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return s[size_t(a)] > s[size_t(b)]; });
    for (int32_t i = 0; i < count[size_t(t)]; ++i) {
      EXPECT_LT(top[size_t(t * 3 + i)], visible) << "query " << t << " sees an open window";
      EXPECT_EQ(top[size_t(t * 3 + i)], order[size_t(i)]) << t;
    }
  }
}

// top_k against its definition (a stable sort by value, largest first, ties to the lower index)
// over values with many ties, both zeros, negatives and infinities, at every k.
TEST(TopK, LargestFirstTiesToTheLowerIndex) {
  const std::vector<float> pool = {0.f, -0.f, 1.5f, -2.f, 1.5f, INFINITY, -INFINITY, 3e-39f, -3e-39f, 7.f};
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = 1 + int64_t(rng() % (trial % 2 ? 70 : 700));  // k < n / 8: the scan
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = pool[rng() % pool.size()] * (rng() % 3 == 0 ? float(1 + rng() % 4) : 1.f);
    std::vector<int32_t> want(static_cast<size_t>(n));
    std::iota(want.begin(), want.end(), 0);
    std::stable_sort(want.begin(), want.end(), [&](int32_t a, int32_t b) { return x[size_t(a)] > x[size_t(b)]; });
    for (int64_t k = 0; k <= n; ++k) {
      std::vector<int32_t> got(static_cast<size_t>(k));
      top_k(x.data(), n, k, got.data());
      for (int64_t i = 0; i < k; ++i) ASSERT_EQ(got[size_t(i)], want[size_t(i)]) << "n " << n << " k " << k << " i " << i << ": " << x[size_t(got[size_t(i)])] << " vs " << x[size_t(want[size_t(i)])];
    }
  }
}

TEST(Router, BiasChoosesWeightsDoNot) {
  ModelConfig cfg;
  cfg.hidden_size = 4;
  cfg.n_experts = 4;
  cfg.top_k = 2;
  cfg.routed_scaling_factor = 2.0;
  cfg.mlp = {MlpKind::MoE, MlpKind::HashMoE};
  cfg.vocab_size = 3;
  LayerWeights lw;
  // Identity router: logits = x.
  std::vector<float> eye(16, 0.f);
  for (int i = 0; i < 4; ++i) eye[size_t(i * 5)] = 1.f;
  lw.gate = make_weight("gate", DType::F32, {4, 4}, eye);
  lw.gate_bias = make_weight("bias", DType::F32, {4}, {0.f, 0.f, 5.f, 0.f});
  lw.tid2eid = make_weight("tid2eid", DType::I64, {3, 2}, {3, 1, 0, 2, 1, 3});
  const std::vector<float> x = {3.f, 2.f, -1.f, 1.f};
  const int32_t ids[1] = {2};
  auto score = [](float l) { return std::sqrt(softplus(l)); };
  Routing r;
  route(cfg, 0, lw, x.data(), 1, ids, &r);
  // Scores rank 0 > 1 > 3 > 2, but the bias of +5 makes expert 2 a pick.
  EXPECT_EQ(r.expert, (std::vector<int32_t>{2, 0}));
  const float s2 = score(-1.f), s0 = score(3.f);
  EXPECT_NEAR(r.weight[0], s2 / (s2 + s0) * 2.f, 1e-6);
  EXPECT_NEAR(r.weight[1], s0 / (s2 + s0) * 2.f, 1e-6);
  // Hash layer: experts from tid2eid[token], weighted by their unbiased scores.
  route(cfg, 1, lw, x.data(), 1, ids, &r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 3}));
  const float s1 = score(2.f), s3 = score(1.f);
  EXPECT_NEAR(r.weight[0], s1 / (s1 + s3) * 2.f, 1e-6);
}

TEST(Expert, SwigluClamps) {
  ModelConfig cfg;
  cfg.hidden_size = 2;
  cfg.swiglu_limit = 1.0;
  ExpertWeights e;
  e.w1 = make_weight("w1", DType::F32, {1, 2}, {10.f, 0.f});  // gate = 10 x0 -> min(., 1)
  e.w3 = make_weight("w3", DType::F32, {1, 2}, {0.f, -10.f}); // up = -10 x1 -> clamp(., -1, 1)
  e.w2 = make_weight("w2", DType::F32, {2, 1}, {1.f, 2.f});
  const std::vector<float> x = {1.f, 1.f};
  std::vector<float> y(2);
  expert_ffn(cfg, e, x.data(), 1, y.data());
  const float h = silu(1.f) * -1.f;
  EXPECT_NEAR(y[0], h, 1e-6);
  EXPECT_NEAR(y[1], 2 * h, 1e-6);
}

}  // namespace
}  // namespace modelone
