// `bench calibrate`, the compute half: the engine's own kernels timed at a grid of sizes, each
// reduced to seconds per unit of work (dist/plan/machine_profile.h).
//   products   linear() on a weight that stays in cache (256 x 256) and on weights streamed from
//              memory (many copies of 4096 x 4096 in turn), rows 1 .. 512, bf16 repacked into
//              panels as the engine loads them
//   experts    the grouped expert kernel on 4 experts of 256 x 128 and 2-4 of 4096 x 2048
//   attention  attn_partial per query and key (64 heads of 512, and 4 of 64) and the indexer's
//              scoring with its top-k (64 heads of 128 top 512, and 16 of 32 top 8), for 16
//              queries (indexer_select) and for one (indexer_candidates over a store: the decode
//              kernel); the two shapes split each cost into a part by the width and one per key
//   together   a streamed product on the node's ranks at once against one alone (Together)
#include <omp.h>

#include <algorithm>
#include <map>
#include <random>

#include <sched.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "comm/comm.h"
#include "bench/calibrate.h"
#include "model/blocks/attention.h"
#include "model/blocks/indexer.h"
#include "model/blocks/moe_grouped.h"
#include "model/io/release_quant.h"
#include "model/kernels/linear.h"
#include "model/kernels/panel_weights.h"

namespace modelone::bench {

namespace {

// Median seconds of fn over at least 3 runs and about min_s (one warm-up first).
double time_of(const std::function<void()>& fn, double min_s) {
  return median_seconds(fn, 3, min_s);
}

Weight stored_weight(const std::string& dtype, int64_t N, int64_t K, std::mt19937& rng) {
  // Random values, a block of them repeated (the values do not change the time; drawing 512M
  // of them for the head-sized weight would).
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  std::vector<float> v(static_cast<size_t>(N * K));
  const size_t block = std::min<size_t>(v.size(), size_t(1) << 20);
  for (size_t i = 0; i < block; ++i) v[i] = u(rng);
  for (size_t i = block; i < v.size(); ++i) v[i] = v[i - block];
  if (dtype == "fp8") return quantize_weight("w", DType::F8_E4M3, N, K, v, 128);
  if (dtype == "fp4") return quantize_weight("w", DType::F4_E2M1, N, K, v);
  Weight w = make_weight("w", DType::BF16, {N, K}, v);
  if (compute_mode() == Compute::BF16) pack_weight_panels(w);  // as the engine's repack does
  return w;
}

double weight_bytes(const Weight& w) {
  return double(w.nbytes() + (w.scale ? w.scale->nbytes() : 0));
}

// Seconds per FLOP of linear() at each row count, cycling over `copies` weights of N x K.
CostCurve product_curve(const std::vector<Weight>& ws, const std::vector<int64_t>& rows,
                        double min_s, double* bytes) {
  const int64_t N = ws[0].rows(), K = ws[0].cols();
  *bytes = weight_bytes(ws[0]);
  CostCurve c;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t T : rows) {
    std::vector<float> x(static_cast<size_t>(T * K)), y(static_cast<size_t>(T * N));
    for (auto& v : x) v = u(rng);
    size_t next = 0;
    const double s = time_of([&] {
      linear(x.data(), T, K, ws[next], 0, N, y.data(), N);
      next = (next + 1) % ws.size();
    }, min_s);
    c.size.push_back(double(T));
    c.per_unit.push_back(s / (2.0 * double(T) * double(N) * double(K)));
  }
  return c;
}

}  // namespace

ProductCosts calibrate_products(const std::string& dtype, const CalibrateBenchOptions& o) {
  std::mt19937 rng(1);
  const std::vector<int64_t> rows = o.quick ? std::vector<int64_t>{1, 4, 16, 64, 256}
                                            : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  ProductCosts p;
  auto add = [&](const std::vector<Weight>& ws, double min_s) {
    ProductClass c;
    c.curve = product_curve(ws, rows, min_s, &c.bytes);
    p.classes.push_back(c);
  };
  {
    std::vector<Weight> small;
    for (int i = 0; i < 2; ++i) small.push_back(stored_weight(dtype, 256, 256, rng));
    add(small, o.quick ? 0.02 : 0.1);
  }
  {
    // Streamed: enough copies (over 256 MiB, 96 MiB quick) that none is in cache when its turn
    // comes, as a model far larger than the caches.
    const int64_t N = 4096, K = o.quick ? 2048 : 4096;
    std::vector<Weight> big;
    big.push_back(stored_weight(dtype, N, K, rng));
    const double one = weight_bytes(big[0]), want = double(o.quick ? 96 : 256) * (1 << 20);
    while (double(big.size()) * one < want) big.push_back(stored_weight(dtype, N, K, rng));
    add(big, o.quick ? 0.05 : 0.2);
  }
  if (!o.quick) {  // one head-sized weight (V4's vocabulary x hidden 4096), rows up to 64
    std::vector<Weight> head = {stored_weight(dtype, 131072, 4096, rng)};
    ProductClass c;
    c.curve = product_curve(head, {1, 4, 16, 64}, 0.2, &c.bytes);
    p.classes.push_back(c);
  }
  {
    std::vector<Weight> tiny = {stored_weight(dtype, 32, 32, rng)};  // FP4 blocks are 32 wide
    std::vector<float> x(32), y(32);
    p.call_s = time_of([&] { linear(x.data(), 1, 32, tiny[0], 0, 32, y.data(), 32); }, 0.02);
  }
  return p;
}

namespace {
// The grouped kernel on n_exp experts of D x I, rows_each rows each: seconds per FLOP.
CostCurve expert_curve(const std::string& dtype, int64_t D, int64_t I, int64_t n_exp,
                       const std::vector<int64_t>& rows, double min_s, double* bytes) {
  ModelConfig cfg;
  cfg.hidden_size = D, cfg.moe_inter = I, cfg.n_experts = n_exp, cfg.swiglu_limit = 10.0;
  std::mt19937 rng(3);
  std::vector<ExpertWeights> ex(static_cast<size_t>(n_exp));
  for (auto& e : ex) {
    e.w1 = stored_weight(dtype, I, D, rng);
    e.w3 = stored_weight(dtype, I, D, rng);
    e.w2 = stored_weight(dtype, D, I, rng);
  }
  *bytes = weight_bytes(ex[0].w1) * 3;
  CostCurve c;
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t r : rows) {
    const int64_t n = r * n_exp;
    ExpertPairs P;
    for (int64_t e = 0; e <= n_exp; ++e) P.offset.push_back(e * r);
    for (int64_t i = 0; i < n; ++i) P.row.push_back(int32_t(i)), P.weight.push_back(1.f);
    std::vector<float> x(static_cast<size_t>(n * D)), acc(static_cast<size_t>(n * D));
    for (auto& v : x) v = u(rng);
    const double s = time_of([&] { grouped_experts_bf16(cfg, ex, P, x.data(), acc.data()); }, min_s);
    c.size.push_back(double(r));
    c.per_unit.push_back(s / (double(n_exp) * 2.0 * double(r) * 3.0 * double(D) * double(I)));
  }
  return c;
}
}  // namespace

std::vector<double> core_gflops(const CalibrateBenchOptions& o) {
  std::mt19937 rng(3);
  const int64_t T = 256, N = 4096, K = 4096;
  const Weight w = stored_weight("bf16", N, K, rng);
  std::vector<float> x(static_cast<size_t>(T * K), 0.5f), y(static_cast<size_t>(T * N));
  cpu_set_t was;
  sched_getaffinity(0, sizeof(was), &was);
  // Three turns over the cpus, each cpu's best kept: one reading of 3-8 products moved 7-38%
  // between readings 20 s apart (364 -> 390, 284 -> 392), a slow spell of a core lasts minutes.
  std::map<int, double> best;  // by cpu
  const int cpus = std::min<int>(int(sysconf(_SC_NPROCESSORS_ONLN)), CPU_SETSIZE);
  for (int turn = 0; turn < 3; ++turn)
    for (int cpu = 0; cpu < cpus; ++cpu) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      if (sched_setaffinity(0, sizeof(one), &one) != 0) continue;  // outside this job's cpuset
      const double s = time_of([&] { linear(x.data(), T, K, w, 0, N, y.data(), N); }, o.quick ? 0.05 : 0.1);
      const double g = 2.0 * double(T) * double(N) * double(K) / s * 1e-9;
      best[cpu] = std::max(best[cpu], g);
    }
  sched_setaffinity(0, sizeof(was), &was);
  std::vector<double> out;
  for (const auto& [cpu, g] : best) out.push_back(g);
  return out;
}

ProductCosts calibrate_experts(const std::string& dtype, const CalibrateBenchOptions& o) {
  // From 1 row each: the engine takes this kernel as soon as one expert has more than
  // kGemvMaxRows rows, the others then having fewer (a decode batch).
  const std::vector<int64_t> rows = o.quick ? std::vector<int64_t>{2, 16, 64, 256}
                                            : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  ProductCosts p;
  p.classes.resize(2);
  p.classes[0].curve = expert_curve(dtype, 256, 128, 4, rows, o.quick ? 0.02 : 0.1, &p.classes[0].bytes);
  const int64_t D = o.quick ? 2048 : 4096, I = o.quick ? 1024 : 2048;
  p.classes[1].curve = expert_curve(dtype, D, I, 4, rows, o.quick ? 0.05 : 0.2, &p.classes[1].bytes);
  // A floor per expert: one small expert's share of the smallest grouped call (its FLOPs at the
  // first row count, 3 products of 256 x 128).
  const CostCurve& first = p.classes[0].curve;
  p.call_s = first.per_unit.front() * 2.0 * first.size.front() * 3 * 256 * 128;
  return p;
}

namespace {
// attn_partial of q queries (parallel over them, as the engine's attend) over S keys of H heads
// of Dh.
double partial_seconds(int64_t q, int64_t S, int64_t H, int64_t Dh, double min_s) {
  std::mt19937 rng(4);
  std::normal_distribution<float> d;
  std::vector<float> qs(static_cast<size_t>(q * H * Dh)), keys(static_cast<size_t>(S * Dh));
  for (auto& v : qs) v = d(rng);
  for (auto& v : keys) v = d(rng);
  std::vector<float> o(static_cast<size_t>(q * H * Dh)), mx(static_cast<size_t>(q * H)), sum(mx.size());
  return time_of([&] {
#pragma omp parallel for schedule(dynamic, 1) if (q > 1)
    for (int64_t t = 0; t < q; ++t) {
      static thread_local std::vector<float> logits;
      attn_partial(qs.data() + t * H * Dh, H, Dh, keys.data(), std::min<int64_t>(S, 128),
                   keys.data() + std::min<int64_t>(S, 128) * Dh, S - std::min<int64_t>(S, 128),
                   o.data() + t * H * Dh, mx.data() + t * H, sum.data() + t * H, logits);
    }
  }, min_s);
}

// The indexer of q queries over n keys: nI heads of Di, the best `top`.
double index_seconds(int64_t q, int64_t n, int64_t nI, int64_t Di, int64_t top, double min_s) {
  ModelConfig cfg;
  cfg.index_n_heads = nI, cfg.index_head_dim = Di, cfg.index_topk = top, cfg.csa_rate = 4;
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  IndexerQueries iq;
  iq.q.resize(size_t(q * nI * Di)), iq.w.resize(size_t(q * nI));
  for (auto& v : iq.q) v = d(rng);
  for (auto& v : iq.w) v = d(rng);
  std::vector<float> keys(static_cast<size_t>(n * Di));
  for (auto& v : keys) v = d(rng);
  std::vector<int64_t> pos(static_cast<size_t>(q), n * 4);
  std::vector<int32_t> picks(static_cast<size_t>(q * top)), count(static_cast<size_t>(q));
  if (q == 1) {  // decode: one query's candidates from a store, as each rank of a cp group scores
    EntryStore st;
    st.rows = KvStore(compute_mode() == Compute::BF16 ? DType::BF16 : DType::F32, Di);
    st.append(keys.data(), n, int64_t(0));
    std::vector<Candidate> cand;
    return time_of([&] {
      cand.clear();
      indexer_candidates(cfg, iq.q.data(), iq.w.data(), n * 4, st, &cand);
    }, min_s);
  }
  return time_of([&] {
    indexer_select(cfg, iq, q, pos.data(), keys.data(), n, picks.data(), count.data());
  }, min_s);
}

// Seconds per query and key, t = width x a + b, through a wide and a narrow shape's times (per
// query and key): a per unit of width, b what a key costs whatever the heads (its loads, packing,
// the top-k). Each kept positive (a curve's values are): noise may cross them.
void split_widths(double wide_s, double wide_w, double narrow_s, double narrow_w, double* a, double* b) {
  constexpr double kFloor = 1e-18;
  *a = std::max(kFloor, (wide_s - narrow_s) / (wide_w - narrow_w));
  *b = narrow_s - narrow_w * *a;
  if (*b < kFloor) *b = kFloor, *a = wide_s / wide_w;  // no key term to see: all by the width
}

// Wide: V4-Flash's 64 heads of 512 (attention) and 64 of 128, top 512 (indexer). Narrow: the tiny
// preset's 4 of 64 and 16 of 32, top 8. The attend widths count heads at dim 512, the index widths
// head x dim, as OpCosts prices them.
struct Shapes {
  int64_t heads, dim, top;
};
constexpr Shapes kWideAttn{64, 512, 0}, kNarrowAttn{4, 64, 0}, kWideIndex{64, 128, 512}, kNarrowIndex{16, 32, 8};

void attention_curves(const CalibrateBenchOptions& o, int64_t queries, AttnCurves* c) {
  const std::vector<int64_t> keys = o.quick ? std::vector<int64_t>{128, 1024, 8192}
                                            : std::vector<int64_t>{128, 640, 2048, 8192, 32768};
  const double ms = o.quick ? 0.02 : 0.1;
  auto attn_width = [](Shapes s) { return double(s.heads) * double(s.dim) / 512.0; };
  for (int64_t S : keys) {
    const double per = double(queries * S), a = attn_width(kWideAttn), b = attn_width(kNarrowAttn);
    const double wide = partial_seconds(queries, S, kWideAttn.heads, kWideAttn.dim, ms) / per;
    const double narrow = partial_seconds(queries, S, kNarrowAttn.heads, kNarrowAttn.dim, ms) / per;
    c->partial.size.push_back(double(S)), c->partial_key.size.push_back(double(S));
    c->partial.per_unit.push_back(0), c->partial_key.per_unit.push_back(0);
    split_widths(wide, a, narrow, b, &c->partial.per_unit.back(), &c->partial_key.per_unit.back());
  }
  const std::vector<int64_t> nk = o.quick ? std::vector<int64_t>{1024, 16384}
                                          : std::vector<int64_t>{1024, 8192, 65536, 262144};
  for (int64_t n : nk) {
    const double per = double(queries * n);
    const double a = double(kWideIndex.heads * kWideIndex.dim), b = double(kNarrowIndex.heads * kNarrowIndex.dim);
    const double wide = index_seconds(queries, n, kWideIndex.heads, kWideIndex.dim, kWideIndex.top, ms) / per;
    const double narrow = index_seconds(queries, n, kNarrowIndex.heads, kNarrowIndex.dim, kNarrowIndex.top, ms) / per;
    c->index.size.push_back(double(n)), c->index_key.size.push_back(double(n));
    c->index.per_unit.push_back(0), c->index_key.per_unit.push_back(0);
    split_widths(wide, a, narrow, b, &c->index.per_unit.back(), &c->index_key.per_unit.back());
  }
}
}  // namespace

AttnCosts calibrate_attention(const CalibrateBenchOptions& o) {
  AttnCosts a;
  attention_curves(o, 16, &a.many);
  attention_curves(o, 1, &a.one);
  return a;
}

}  // namespace modelone::bench

namespace modelone::bench {

// The node's first k ranks (its ranks, up to its cores; one thread each, placed as run places
// them) stream the same products through weights far larger than the caches: rank 0 alone
// while the others sleep, then all k at once, the same number of turns each (about 0.05 s of
// rank 0's alone) so that they overlap from start to end; three rounds of both, alternated. The
// slowest rank's median turn together against rank 0's alone, each the median of its rounds, per
// rows, is the slowdown (collective on the node; rank 0's result is the one kept). One round each
// read 1.10 / 2.02 / 1.06 / 1.02 / 1.26 at 1 / 4 / 16 / 64 / 256 rows: a stall in one round.
Together calibrate_together(const comm::Comm& node, int cores, const CalibrateBenchOptions& o) {
  Together tg;
  const int k = std::min(node.size(), cores);
  if (k < 2) return tg;
  tg.ranks = k;
  const bool in = node.rank() < k;
  std::mt19937 rng(4);
  const int64_t N = 4096, K = 2048;  // 16 MiB of bf16 a copy, 96 MiB in turn per rank
  std::vector<Weight> ws;
  if (in)
    for (int i = 0; i < 6; ++i) ws.push_back(stored_weight("bf16", N, K, rng));
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t T : {1, 4, 16, 64, 256}) {
    std::vector<float> x(static_cast<size_t>(T * K)), y(static_cast<size_t>(T * N));
    for (auto& v : x) v = u(rng);
    size_t next = 0;
    const auto turn = [&] {
      linear(x.data(), T, K, ws[next], 0, N, y.data(), N);
      next = (next + 1) % ws.size();
    };
    double turns = 0;
    if (node.rank() == 0)
      turns = std::clamp(std::ceil((o.quick ? 0.03 : 0.05) / median_seconds(turn, 5, 0)), 5.0, 1000.0);
    node.bcast(&turns, 1, 0);
    std::vector<double> alone, together;
    for (int round = 0; round < 3; ++round) {
      if (node.rank() == 0) alone.push_back(median_seconds(turn, int(turns), 0));
      node.barrier_idle();
      const double mine = in ? median_seconds(turn, int(turns), 0) : 0;
      together.push_back(node.allreduce(mine, comm::Op::Max));
      node.barrier_idle();
    }
    tg.slowdown.size.push_back(double(T));
    tg.slowdown.per_unit.push_back(node.rank() == 0 ? std::max(1e-3, median(together) / median(alone)) : 1.0);
  }
  return tg;
}

}  // namespace modelone::bench
