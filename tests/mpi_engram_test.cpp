// Engram (V4.1) over N ranks against one rank, in one MPI job (ctest runs it at 1-4): with the
// tables sharded over the world (or the ranks --engram-ranks names), both fetch paths, prefetch
// on and off, with cp = the world and with cp = 1 (dp = N), the prefill logits and greedy tokens
// equal those of the same model on each rank alone. Prompts cross prefill steps, so n-grams span
// step and block boundaries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "comm/comm.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

constexpr float kRelTol = 1e-5f;  // fp32 summation order only
const char* kModel = "tiny-engram";


std::vector<int32_t> prompt(int64_t n, uint64_t salt = 0) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t)
    ids[size_t(t)] = int32_t((uint64_t(t) * 2654435761u + 11 + salt * 40503u) % 512u);
  return ids;
}

std::vector<float> prefill_all(Engine& e, const std::vector<int32_t>& ids) {
  PrefillOptions all;
  all.all_logits = true;
  return e.prefill(ids, all);
}

EngineOptions opts(EngramFetch fetch, bool prefetch, std::vector<int> owners = {}) {
  EngineOptions o;
  o.prefill_chunk = 16;
  o.engram.fetch = fetch;
  o.engram.prefetch = prefetch;
  o.engram.owners = std::move(owners);
  return o;
}

// Prefill (all logits) + 8 greedy tokens through both engines, for several prompt lengths.
void compare(TestModel& ref, TestModel& dist, const std::string& what) {
  for (int64_t n : {1, 5, 37, 203}) {
    SCOPED_TRACE(what + ", prompt " + std::to_string(n) + ", cp " + std::to_string(dist.grid.cp) +
                 " of world " + std::to_string(dist.grid.W));
    ref.engine->reset();
    dist.engine->reset();
    const auto ids = prompt(n, uint64_t(n));
    const auto a = prefill_all(*ref.engine, ids), b = prefill_all(*dist.engine, ids);
    if (dist.grid.cp_comm.rank() == 0) {
      EXPECT_LE(rel_diff(b, a), kRelTol) << "prefill logits";
    }
    EXPECT_LE(rel_diff(dist.engine->last_logits(), ref.engine->last_logits()), kRelTol);
    EXPECT_EQ(dist.engine->generate(8, true), ref.engine->generate(8, true)) << "greedy tokens";
  }
}

struct EngramSetup {
  EngramFetch fetch;
  bool prefetch;
  int cp;  // 0: the world
};

class EngramParallel : public ::testing::TestWithParam<EngramSetup> {};

TEST_P(EngramParallel, MatchesOneRank) {
  const EngramSetup s = GetParam();
  auto ref = make_solo_model(kModel, opts(s.fetch, s.prefetch));
  auto dist = make_model(kModel, opts(s.fetch, s.prefetch), {}, s.cp, 0);
  compare(*ref, *dist, std::string(engram_fetch_name(s.fetch)) +
                           (s.prefetch ? ", prefetch" : ", no prefetch"));
}

INSTANTIATE_TEST_SUITE_P(
    FetchPrefetchCp, EngramParallel,
    ::testing::Values(EngramSetup{EngramFetch::Get, true, 0}, EngramSetup{EngramFetch::Alltoall, true, 0},
                      EngramSetup{EngramFetch::Get, false, 0}, EngramSetup{EngramFetch::Alltoall, false, 1},
                      EngramSetup{EngramFetch::Get, true, 1}),
    [](const auto& info) {
      return std::string(engram_fetch_name(info.param.fetch)) +
             (info.param.prefetch ? "_prefetch" : "_noprefetch") +
             (info.param.cp == 1 ? "_cp1" : "_cpworld");
    });

// Tables on some ranks only: the first, or the last two.
TEST(EngramOwners, SubsetOfRanksMatchesOneRank) {
  const int W = comm::Comm::world().size();
  auto ref = make_solo_model(kModel, opts(EngramFetch::Get, true));
  for (EngramFetch f : {EngramFetch::Get, EngramFetch::Alltoall}) {
    for (std::vector<int> owners : {std::vector<int>{0}, std::vector<int>{std::max(0, W - 2), W - 1}}) {
      owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
      auto dist = make_model(kModel, opts(f, true, owners));
      EXPECT_EQ(dist->engine->engram()->local_bytes() > 0,
                std::find(owners.begin(), owners.end(), comm::Comm::world().rank()) != owners.end());
      compare(*ref, *dist, std::string("owners subset, ") + engram_fetch_name(f));
    }
  }
}

// The hot-row cache (small, so rows are evicted) changes nothing but the traffic; decoding a
// repeated token hits it.
TEST(EngramCache, SameResultsAndHits) {
  auto ref = make_solo_model(kModel, opts(EngramFetch::Get, true));
  for (EngramFetch f : {EngramFetch::Get, EngramFetch::Alltoall}) {
    EngineOptions o = opts(f, true);
    o.engram.cache_rows = 40;
    auto dist = make_model(kModel, o);
    compare(*ref, *dist, std::string("cache, ") + engram_fetch_name(f));
    dist->engine->reset();
    std::vector<int32_t> ids(8, 9);
    dist->engine->prefill(ids);
    const int32_t tok = 9;
    for (int i = 0; i < 6; ++i) dist->engine->decode(&tok);
    const EngramStats& s = dist->engine->engram()->stats;
    const comm::Comm w = comm::Comm::world();
    if (w.size() > 1) {
      EXPECT_GT(w.allreduce(s.cache_hits, comm::Op::Sum), 0) << "repeated n-grams never hit";
    } else {
      EXPECT_EQ(s.cache_lookups, 0) << "one rank holds every row: nothing is remote";
    }
  }
}

// --engram off runs the same backbone without the blocks: the logits change.
TEST(EngramOff, ChangesTheLogits) {
  EngineOptions off = opts(EngramFetch::Get, true);
  off.engram.enabled = false;
  auto on_m = make_model(kModel, opts(EngramFetch::Get, true));
  auto off_m = make_model(kModel, off);
  EXPECT_EQ(off_m->engine->engram(), nullptr);
  const auto ids = prompt(40);
  on_m->engine->prefill(ids);
  off_m->engine->prefill(ids);
  EXPECT_GT(rel_diff(on_m->engine->last_logits(), off_m->engine->last_logits()), 1e-3f);
}

// A row wanted several times in a step is fetched once: a prompt of one repeated token asks for
// the same rows at every position past the padded start.
TEST(EngramDedupe, RepeatedNgramsFetchedOnce) {
  auto m = make_model(kModel, opts(EngramFetch::Get, true));
  std::vector<int32_t> ids(64, 7);
  m->engine->prefill(ids);
  const EngramStats& s = m->engine->engram()->stats;
  const int64_t mine = comm::Comm::world().allreduce(s.lookups, comm::Op::Sum);
  const int64_t uniq = comm::Comm::world().allreduce(s.unique, comm::Op::Sum);
  EXPECT_EQ(mine, 64 * 2 * m->ms.cfg.engram.columns());  // 64 positions, 2 Engram layers
  EXPECT_LT(uniq * 4, mine) << "repeated n-grams were not deduplicated";
}

TEST(EngramBadInput, OwnerOutsideTheWorld) {
  const int W = comm::Comm::world().size();
  const std::string err =
      error_of([&] { make_model(kModel, opts(EngramFetch::Get, true, {0, W})); });
  EXPECT_NE(err.find("--engram-ranks: rank " + std::to_string(W) + " is outside"),
            std::string::npos) << err;
}

}  // namespace
}  // namespace modelone::test
