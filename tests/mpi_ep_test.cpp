// Expert parallelism against a single rank, in one MPI job of N ranks (ctest runs it at 1-4):
// the engine with ep = N (experts spread, tokens exchanged) must give the logits and greedy
// tokens of ep = 1 (every rank holds every expert) on the same inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "comm/comm.h"
#include "comm/rank_stats.h"
#include "dist/eplb.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

constexpr float kRelTol = 1e-5f;


std::vector<int32_t> prompt(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) ids[size_t(t)] = int32_t((t * 2654435761u + 7) % uint64_t(vocab));
  return ids;
}

std::vector<float> prefill_all(Engine& e, const std::vector<int32_t>& ids) {
  PrefillOptions all;
  all.all_logits = true;
  return e.prefill(ids, all);
}

// The timers' reduction over ranks (comm/rank_stats.h): rank r contributes r + 1 seconds of
// exchange and 10 (r + 1) rows, so min 1, max W, mean (W + 1) / 2 and sum W (W + 1) / 2.
TEST(RankStats, EveryFieldReducedOverTheRanks) {
  const comm::Comm world = comm::Comm::world();
  const int W = world.size(), r = world.rank();
  MoeTimers before, now;
  before.exchange = 0.5;
  now.exchange = 0.5 + double(r + 1);
  now.rows_sent = 10 * (r + 1);
  const comm::Reduced red = comm::reduce_fields(world, comm::fields_minus(now, before));
  EXPECT_DOUBLE_EQ(red["exchange"].min, 1.0);
  EXPECT_DOUBLE_EQ(red["exchange"].max, double(W));
  EXPECT_DOUBLE_EQ(red["exchange"].mean, 0.5 * double(W + 1));
  EXPECT_DOUBLE_EQ(red["rows_sent"].sum, 5.0 * double(W) * double(W + 1));
  EXPECT_DOUBLE_EQ(red["route"].max, 0.0);
  EXPECT_EQ(red.names().size(), size_t(7));
  EXPECT_THROW(red["no_such_field"], std::logic_error);
  MoeTimers sum = before;
  comm::fields_add(sum, now);
  EXPECT_DOUBLE_EQ(sum.exchange, 1.0 + double(r + 1));
  EXPECT_EQ(sum.rows_sent, 10 * (r + 1));
}

// (model, transport): every case runs over MPI all-to-all and over node-shared memory.
class ExpertParallel : public ::testing::TestWithParam<std::tuple<std::string, Transport>> {
 protected:
  std::string model() const {
    const std::string m = std::get<0>(GetParam());
    return m == "hf" ? data_dir("hf_v4_tiny") : m;
  }
  EngineOptions opts() const {
    EngineOptions o;
    o.moe.transport = std::get<1>(GetParam());
    o.moe.shm_round_tokens = 16;  // several shared-memory rounds per layer
    return o;
  }
};

TEST_P(ExpertParallel, EveryRankItsOwnSequence) {
  auto single = make_model(model(), {}, {}, /*cp=*/1, /*ep=*/1);
  auto spread = make_model(model(), opts(), {}, /*cp=*/1, /*ep=*/0);  // ep = world
  const int W = spread->grid.W;
  ASSERT_EQ(spread->grid.ep, W);
  // Ranks run different prompts so the exchange carries distinct rows from every rank.
  const int64_t V = single->ms.cfg.vocab_size, T = 40 + 7 * spread->grid.world.rank();
  auto ids = prompt(T, V);
  std::rotate(ids.begin(), ids.begin() + spread->grid.world.rank(), ids.end());
  const auto a = prefill_all(*single->engine, ids), b = prefill_all(*spread->engine, ids);
  EXPECT_LE(rel_diff(b, a), kRelTol) << "prefill logits, ep " << W << " vs ep 1";
  EXPECT_EQ(spread->engine->generate(12, true), single->engine->generate(12, true));
}

TEST_P(ExpertParallel, SeveralEpGroups) {
  // ep = 2 inside a larger world: each pair of ranks shares one copy of the experts.
  auto single = make_model(model(), {}, {}, /*cp=*/1, 1);
  if (single->grid.W % 2 != 0) GTEST_SKIP() << "needs an even world";
  auto pairs = make_model(model(), opts(), {}, /*cp=*/1, 2);
  ASSERT_EQ(pairs->grid.ep, 2);
  const int64_t V = single->ms.cfg.vocab_size, T = 20 + 3 * pairs->grid.world.rank();
  auto ids = prompt(T, V);
  const auto a = prefill_all(*single->engine, ids), b = prefill_all(*pairs->engine, ids);
  EXPECT_LE(rel_diff(b, a), kRelTol);
}

TEST_P(ExpertParallel, IdleRanksStillServeTheirExperts) {
  // One sequence on rank 0 (the dp > 1 case of `modelone run`): the others have no tokens but
  // hold experts rank 0 needs.
  auto single = make_model(model(), {}, {}, /*cp=*/1, 1);
  auto spread = make_model(model(), opts(), {}, /*cp=*/1, 0);
  const bool active = spread->grid.world.rank() == 0;
  const int64_t V = single->ms.cfg.vocab_size, T = 33;
  auto ids = prompt(T, V);
  const auto a = prefill_all(*single->engine, ids);
  const auto b = prefill_all(*spread->engine, active ? ids : std::vector<int32_t>{});
  if (active) {
    EXPECT_LE(rel_diff(b, a), kRelTol);
  }
  const auto ga = single->engine->generate(10, true);
  const auto gb = spread->engine->generate(10, true);
  if (active) {
    EXPECT_EQ(gb, ga);
  }
  if (!active) {
    EXPECT_TRUE(gb.empty());
  }
}

TEST_P(ExpertParallel, OverlapAndRedundantPlacementChangeNothing) {
  auto single = make_model(model(), {}, {}, /*cp=*/1, 1);
  const ModelConfig& cfg = single->ms.cfg;
  const int W = single->grid.W;
  // A skewed synthetic load, planned with redundant copies: every expert appears on 1-2 ranks.
  std::vector<std::vector<int64_t>> loads(size_t(cfg.num_layers));
  for (auto& l : loads)
    for (int64_t e = 0; e < cfg.n_experts; ++e) l.push_back(e == 0 ? 1000 : 10 * (e + 1));
  EngineOptions opt = opts();
  opt.moe.overlap = true;
  auto spread = make_model(model(), opt, {}, /*cp=*/1, 0, plan_placement(loads, W, W));
  const int64_t V = cfg.vocab_size, T = 29 + 5 * spread->grid.world.rank();
  auto ids = prompt(T, V);
  const auto a = prefill_all(*single->engine, ids), b = prefill_all(*spread->engine, ids);
  EXPECT_LE(rel_diff(b, a), kRelTol);
  EXPECT_EQ(spread->engine->generate(8, true), single->engine->generate(8, true));
}

TEST_P(ExpertParallel, LowPrecisionPayloads) {
  // The measured effect of each payload precision on the logits (printed; bounded loosely so a
  // broken codec still fails).
  auto single = make_model(model(), {}, {}, /*cp=*/1, 1);
  const int64_t V = single->ms.cfg.vocab_size, T = 48;
  auto ids = prompt(T, V);
  const auto ref = prefill_all(*single->engine, ids);
  struct P { Payload d, c; float bound; };
  for (P p : {P{Payload::BF16, Payload::F32, 1e-2f}, P{Payload::FP8, Payload::F32, 3e-1f},
              P{Payload::F32, Payload::BF16, 1e-2f}, P{Payload::FP8, Payload::BF16, 3e-1f}}) {
    EngineOptions opt = opts();
    opt.moe.dispatch = p.d;
    opt.moe.combine = p.c;
    auto m = make_model(model(), opt, {}, /*cp=*/1, 0);
    const auto got = prefill_all(*m->engine, ids);
    const float rd = rel_diff(got, ref);
    int same = 0;  // positions whose greedy token is unchanged
    for (int64_t t = 0; t < T; ++t) {
      auto a = ref.begin() + t * V, b = got.begin() + t * V;
      same += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
    }
    if (m->grid.world.rank() == 0)
      std::printf("[   info   ] %s dispatch %s combine %s, ep %d: logits max rel diff %.3g, "
                  "same argmax at %d/%lld positions\n",
                  std::get<0>(GetParam()).c_str(), payload_name(p.d), payload_name(p.c),
                  m->grid.W, rd, same, (long long)T);
    EXPECT_LE(rd, p.bound) << payload_name(p.d) << "/" << payload_name(p.c);
    if (m->grid.W > 1) {
      EXPECT_GT(rd, 0.f) << "a low-precision payload left the logits untouched";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, ExpertParallel,
    ::testing::Combine(::testing::Values("hf", "tiny"),
                       ::testing::Values(Transport::Mpi, Transport::Shm)),
    [](const auto& info) {
      return std::get<0>(info.param) + (std::get<1>(info.param) == Transport::Mpi ? "_mpi" : "_shm");
    });

}  // namespace
}  // namespace modelone::test
