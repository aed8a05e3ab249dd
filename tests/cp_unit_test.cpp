// The pieces context parallelism is built from, each cut at every block boundary and put back
// together against the uncut result: attention partials merged with the sink counted once, the
// indexer's top-k merged from per-rank candidates (ties to the lower global index), a
// compressor restarted from a neighbour's raw rows, and the step layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dist/cp_layout.h"
#include "model/base/even_split.h"
#include "model/blocks/attention.h"
#include "model/blocks/compressor.h"
#include "model/blocks/indexer.h"
#include "model/io/synthetic.h"
#include "model/io/weight_tensor.h"

namespace modelone {
namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Softmax attention of q[H, Dh] over keys k[S, Dh] (K = V) with a per-head sink, in double.
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& sink, int64_t H, int64_t Dh,
                                    int64_t S) {
  std::vector<double> o(size_t(H * Dh), 0.0);
  for (int64_t h = 0; h < H; ++h) {
    std::vector<double> l(static_cast<size_t>(S));
    double mx = sink[size_t(h)];
    for (int64_t s = 0; s < S; ++s) {
      double d = 0;
      for (int64_t c = 0; c < Dh; ++c) d += double(q[size_t(h * Dh + c)]) * k[size_t(s * Dh + c)];
      l[size_t(s)] = d / std::sqrt(double(Dh));
      mx = std::max(mx, l[size_t(s)]);
    }
    double z = std::exp(sink[size_t(h)] - mx);
    for (int64_t s = 0; s < S; ++s) z += std::exp(l[size_t(s)] - mx);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t c = 0; c < Dh; ++c)
        o[size_t(h * Dh + c)] += std::exp(l[size_t(s)] - mx) / z * k[size_t(s * Dh + c)];
  }
  return o;
}

AttnPartials partial(const std::vector<float>& q, const std::vector<float>& k, int64_t a,
                     int64_t b, int64_t H, int64_t Dh) {
  AttnPartials p;
  p.resize(1, H, Dh);
  std::vector<float> logits;
  // The first half of the block as window keys, the rest as compressed keys: both paths.
  const int64_t mid = a + (b - a) / 2;
  attn_partial(q.data(), H, Dh, k.data() + a * Dh, mid - a, k.data() + mid * Dh, b - mid,
               p.o.data(), p.mx.data(), p.sum.data(), logits);
  return p;
}

TEST(AttentionPartials, MergeAtEveryCutCountsTheSinkOnce) {
  const int64_t H = 4, Dh = 16, S = 23;
  const auto q = randn(size_t(H * Dh), 1), k = randn(size_t(S * Dh), 2);
  auto sink = randn(size_t(H), 3);
  sink[0] = 4.f;  // a sink that dominates one head
  const auto want = naive_attention(q, k, sink, H, Dh, S);
  auto check = [&](const std::vector<const AttnPartials*>& parts, const std::string& what) {
    std::vector<float> o(static_cast<size_t>(H * Dh));
    attn_merge(1, H, Dh, sink.data(), parts, o.data());
    for (size_t i = 0; i < o.size(); ++i) ASSERT_NEAR(o[i], want[i], 2e-6) << what << " at " << i;
  };
  const AttnPartials whole = partial(q, k, 0, S, H, Dh);
  check({&whole}, "uncut");
  for (int64_t a = 0; a <= S; ++a) {
    // Two blocks (one of them empty at the ends: a rank holding no key of this query).
    const AttnPartials x = partial(q, k, 0, a, H, Dh), y = partial(q, k, a, S, H, Dh);
    check({&x, &y}, "cut at " + std::to_string(a));
    check({&y, &x}, "cut at " + std::to_string(a) + ", blocks swapped");
    for (int64_t b = a; b <= S; ++b) {  // three blocks
      const AttnPartials u = partial(q, k, 0, a, H, Dh), v = partial(q, k, a, b, H, Dh),
                         w = partial(q, k, b, S, H, Dh);
      check({&u, &v, &w}, "cuts at " + std::to_string(a) + ", " + std::to_string(b));
    }
  }
  // An empty key set has no maximum and weighs nothing.
  const AttnPartials none = partial(q, k, 0, 0, H, Dh);
  EXPECT_EQ(none.mx[0], -INFINITY);
  EXPECT_EQ(none.sum[0], 0.f);
}

// Dyadic values keep every dot product exact, so equal key rows give exactly equal scores:
// real ties, which both selections must break toward the lower global index.
std::vector<float> dyadic(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int> d(-4, 4);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(g)) / 4.f;
  return v;
}

TEST(IndexerTopK, CandidatesMergedFromAnySplitEqualTheUncutSelection) {
  ModelConfig cfg;
  cfg.index_n_heads = 16;
  cfg.index_head_dim = 8;
  cfg.index_topk = 5;
  cfg.csa_rate = 4;
  const int64_t nI = 16, Di = 8, E = 29, K = 5;
  // Only 6 distinct key rows among the 29: many scores tie.
  const auto distinct = dyadic(size_t(6 * Di), 4);
  std::vector<float> keys(static_cast<size_t>(E * Di));
  for (int64_t e = 0; e < E; ++e)
    std::copy_n(distinct.begin() + (e * 5 % 6) * Di, Di, keys.begin() + e * Di);
  IndexerQueries iq;
  iq.q = dyadic(size_t(nI * Di), 5);
  iq.w = dyadic(size_t(nI), 6);
  const int64_t pos = 4 * E - 1;  // every window has closed
  std::vector<int32_t> want(static_cast<size_t>(K)), count(1);
  indexer_select(cfg, iq, 1, &pos, keys.data(), E, want.data(), count.data());
  ASSERT_EQ(count[0], K);
  for (int64_t i = 1; i < K; ++i) ASSERT_NE(want[size_t(i)], want[size_t(i - 1)]);

  auto store = [&](const std::vector<int32_t>& idx) {
    EntryStore s;
    s.rows = KvStore(DType::F32, Di);
    for (int32_t g : idx) s.append(keys.data() + g * Di, 1, int64_t(g));
    return s;
  };
  auto merged = [&](const std::vector<std::vector<int32_t>>& shards) {
    std::vector<Candidate> all;
    for (auto& sh : shards) indexer_candidates(cfg, iq.q.data(), iq.w.data(), pos, store(sh), &all);
    std::vector<int32_t> top(static_cast<size_t>(K));
    top.resize(size_t(merge_candidates(all, K, top.data())));
    return top;
  };
  for (int64_t c = 0; c <= E; ++c) {  // contiguous blocks cut at c (one may be empty)
    std::vector<int32_t> a, b;
    for (int32_t g = 0; g < E; ++g) (g < c ? a : b).push_back(g);
    EXPECT_EQ(merged({a, b}), want) << "cut at " << c;
    EXPECT_EQ(merged({b, a}), want) << "cut at " << c << ", ranks swapped";
  }
  for (int cp : {2, 3, 4}) {  // decode placement: entry g on rank g mod cp
    std::vector<std::vector<int32_t>> shards(static_cast<size_t>(cp));
    for (int32_t g = 0; g < E; ++g) shards[size_t(g % cp)].push_back(g);
    EXPECT_EQ(merged(shards), want) << "round-robin over " << cp;
  }
}

TEST(Compressor, RestartFromRawRowsAtEveryPosition) {
  const int64_t W = 8, T = 37;
  const Rope rope({RopeParams::Type::Default, 10000, 4});
  for (bool csa : {true, false}) {
    const int64_t m = csa ? 4 : 5, pw = csa ? 2 * W : W;
    CompressorWeights w;
    w.ape = make_weight("ape", DType::F32, {m, pw}, randn(size_t(m * pw), 7));
    w.norm = make_weight("norm", DType::F32, {W}, std::vector<float>(size_t(W), 1.f));
    const auto kv = randn(size_t(T * pw), 8), gate = randn(size_t(T * pw), 9);
    auto fresh = [&] { return compressor_state(m, W, csa); };
    auto out = [&] {
      EntryStore e;
      e.rows = KvStore(DType::F32, W);
      return e;
    };
    CompressorState whole = fresh();
    EntryStore want = out();
    compressor_feed(whole, w, rope, 1e-6f, kv.data(), gate.data(), T, want);
    for (int64_t c = 0; c <= T; ++c) {
      // A second rank takes over at c, given only the rows its state needs there.
      CompressorState a = fresh(), b = fresh();
      EntryStore got = out();
      compressor_feed(a, w, rope, 1e-6f, kv.data(), gate.data(), c, got);
      b.first = b.lookback_start(c);
      b.n = c - b.first;
      std::copy_n(kv.begin() + b.first * pw, b.n * pw, b.kv.begin());
      std::copy_n(gate.begin() + b.first * pw, b.n * pw, b.gate.begin());
      compressor_feed(b, w, rope, 1e-6f, kv.data() + c * pw, gate.data() + c * pw, T - c, got);
      ASSERT_EQ(got.index, want.index) << (csa ? "CSA" : "HCA") << " cut at " << c;
      std::vector<float> x(size_t(got.size() * W)), y(size_t(want.size() * W));
      got.rows.read(0, got.size(), x.data());
      want.rows.read(0, want.size(), y.data());
      EXPECT_EQ(x, y) << (csa ? "CSA" : "HCA") << " cut at " << c;
    }
  }
}

TEST(StepLayout, PiecesCoverTheStepOnce) {
  for (CpLayout kind : {CpLayout::Contiguous, CpLayout::Zigzag})
    for (int cp : {1, 2, 3, 4, 8})
      for (int64_t n : {1, 2, 3, 7, 16, 101}) {
        const int64_t p0 = 50;
        const StepLayout L = prefill_layout(p0, n, cp, kind);
        std::vector<int> seen(size_t(n), 0);
        int64_t total = 0;
        for (int r = 0; r < cp; ++r) {
          int64_t rows = 0, last = -1;
          for (const Segment& s : L.segs[size_t(r)]) {
            EXPECT_EQ(s.row, rows) << "rows follow the segments";
            EXPECT_GT(s.pos, last) << "segments in position order";
            for (int64_t q = s.pos; q < s.pos + s.n; ++q) {
              ++seen[size_t(q - p0)];
              EXPECT_EQ(L.owner(q), r);
              EXPECT_EQ(L.row_of(q, r), s.row + q - s.pos);
            }
            rows += s.n;
            last = s.pos + s.n;
          }
          EXPECT_EQ(rows, L.rows[size_t(r)]);
          total += rows;
          // Balanced: at most one more piece's worth than an even share.
          const int pieces = kind == CpLayout::Zigzag ? 2 : 1;
          EXPECT_LE(rows, (n + cp * pieces - 1) / (cp * pieces) * pieces);
        }
        EXPECT_EQ(total, n);
        for (int c : seen) {
          EXPECT_EQ(c, 1);
        }
        if (kind == CpLayout::Zigzag && n >= 2 * cp) {  // rank 0 holds the first and last piece
          EXPECT_TRUE(L.owner(p0) == 0 && L.tail() == 0);
        }
      }
  const StepLayout d = decode_layout(99, 3, 2);
  EXPECT_EQ(d.owner(99), 2);
  EXPECT_EQ(d.rows, (std::vector<int64_t>{0, 0, 1}));
}

// The one even split: parts tile [0, n) in order, the first n % P one longer, and part_of
// inverts begin / end (10 over 4: 3 3 2 2; 2 over 5: 1 1 0 0 0).
TEST(EvenSplit, PartsTileTheItems) {
  const EvenSplit a(10, 4);
  EXPECT_EQ(a.count(0), 3);
  EXPECT_EQ(a.begin(2), 6);
  EXPECT_EQ(a.end(3), 10);
  const EvenSplit b(2, 5);
  EXPECT_EQ(b.count(1), 1);
  EXPECT_EQ(b.count(2), 0);
  for (int64_t n : {0, 1, 7, 64, 1001})
    for (int64_t P : {1, 2, 3, 8, 13}) {
      const EvenSplit s(n, P);
      int64_t at = 0;
      for (int64_t i = 0; i < P; ++i) {
        ASSERT_EQ(s.begin(i), at);
        ASSERT_GE(s.count(i), n / P);
        ASSERT_LE(s.count(i), n / P + 1);
        for (int64_t k = s.begin(i); k < s.end(i); ++k) ASSERT_EQ(s.part_of(k), i) << n << " " << P;
        at = s.end(i);
      }
      ASSERT_EQ(at, n);
    }
}

}  // namespace
}  // namespace modelone
