// Expert parallelism against a single rank, in one MPI job of N ranks (ctest runs it at 1-4):
// the engine with ep = N (experts spread, tokens exchanged) must give the logits and greedy
// tokens of ep = 1 (every rank holds every expert) on the same inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "comm/comm.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

constexpr float kRelTol = 1e-5f;

float rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float scale = 0;
  for (float v : b) scale = std::max(scale, std::fabs(v));
  return max_diff(a.data(), b.data(), b.size()).max_abs / std::max(scale, 1e-30f);
}

std::vector<int32_t> prompt(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) ids[size_t(t)] = int32_t((t * 2654435761u + 7) % uint64_t(vocab));
  return ids;
}

std::vector<int32_t> greedy(Engine& e, std::vector<float> logits, int64_t n, bool active) {
  std::vector<int32_t> out;
  const int64_t V = e.config().vocab_size;
  for (int64_t i = 0; i < n; ++i) {
    int32_t next = 0;
    if (active) next = int32_t(std::max_element(logits.end() - V, logits.end()) - (logits.end() - V));
    out.push_back(next);
    e.forward(&next, active ? 1 : 0, false, &logits);
  }
  return out;
}

class ExpertParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(ExpertParallel, EveryRankItsOwnSequence) {
  const std::string model = GetParam() == "hf" ? data_dir("hf_v4_tiny") : GetParam();
  auto single = make_model(model, {}, {}, 0, /*ep=*/1);
  auto spread = make_model(model, {}, {}, 0, /*ep=*/0);  // ep = world
  const int W = spread->grid.W;
  ASSERT_EQ(spread->grid.ep, W);
  // Ranks run different prompts so the exchange carries distinct rows from every rank.
  const int64_t V = single->ms.cfg.vocab_size, T = 40 + 7 * spread->grid.world.rank();
  auto ids = prompt(T, V);
  std::rotate(ids.begin(), ids.begin() + spread->grid.world.rank(), ids.end());
  std::vector<float> a, b;
  single->engine->forward(ids.data(), T, true, &a);
  spread->engine->forward(ids.data(), T, true, &b);
  EXPECT_LE(rel_diff(b, a), kRelTol) << "prefill logits, ep " << W << " vs ep 1";
  EXPECT_EQ(greedy(*spread->engine, b, 12, true), greedy(*single->engine, a, 12, true));
}

TEST_P(ExpertParallel, IdleRanksStillServeTheirExperts) {
  // One sequence on rank 0 (the dp > 1 case of `modelone run`): the others have no tokens but
  // hold experts rank 0 needs.
  const std::string model = GetParam() == "hf" ? data_dir("hf_v4_tiny") : GetParam();
  auto single = make_model(model, {}, {}, 0, 1);
  auto spread = make_model(model, {}, {}, 0, 0);
  const bool active = spread->grid.world.rank() == 0;
  const int64_t V = single->ms.cfg.vocab_size, T = 33;
  auto ids = prompt(T, V);
  std::vector<float> a, b;
  single->engine->forward(ids.data(), T, true, &a);
  spread->engine->forward(ids.data(), active ? T : 0, true, &b);
  if (active) EXPECT_LE(rel_diff(b, a), kRelTol);
  const auto ga = greedy(*single->engine, a, 10, true);
  const auto gb = greedy(*spread->engine, b, 10, active);
  if (active) EXPECT_EQ(gb, ga);
}

INSTANTIATE_TEST_SUITE_P(Models, ExpertParallel, ::testing::Values("hf", "tiny"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace modelone::test
