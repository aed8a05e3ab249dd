// Expert placement: the payload codecs, the EPLB planner, and placement files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "dist/eplb.h"
#include "dist/moe_payload.h"
#include "model/base/check.h"
#include "tests/support.h"

namespace modelone {
namespace {

using test::error_of;

TEST(RowCodec, RoundTripsWithinThePayloadsPrecision) {
  const int64_t D = 300, k = 3;  // D not a multiple of the FP8 block
  std::mt19937 g(1);
  std::normal_distribution<float> n(0.f, 2.f);
  std::vector<float> x(static_cast<size_t>(D)), y(static_cast<size_t>(D));
  for (auto& v : x) v = n(g);
  const int32_t ex[3] = {5, -1, 7};
  const float wt[3] = {0.25f, 0.f, 1.5f};
  for (Payload p : {Payload::F32, Payload::BF16, Payload::FP8}) {
    RowCodec c(D, k, p, Payload::BF16);
    EXPECT_EQ(c.dispatch_bytes() % 16, 0);
    std::vector<uint8_t> row(static_cast<size_t>(c.dispatch_bytes()));
    c.encode_dispatch(x.data(), ex, wt, row.data());
    c.decode_dispatch(row.data(), y.data());
    EXPECT_EQ(c.experts(row.data())[2], 7);
    EXPECT_EQ(c.weights(row.data())[0], 0.25f);
    for (int64_t i = 0; i < D; ++i) {
      // Block max of |x| bounds the FP8 error: half an e4m3 ulp at the value's binade.
      float amax = 0;
      for (int64_t j = i / 128 * 128; j < std::min(D, i / 128 * 128 + 128); ++j) amax = std::max(amax, std::fabs(x[size_t(j)]));
      const float tol = p == Payload::F32 ? 0.f
                        : p == Payload::BF16 ? std::fabs(x[size_t(i)]) * 0x1p-8f
                                             : std::max(std::fabs(x[size_t(i)]) * 0x1p-4f, amax / 448 * 0x1p-9f);
      EXPECT_LE(std::fabs(y[size_t(i)] - x[size_t(i)]), tol) << payload_name(p) << " " << i;
    }
  }
  std::vector<float> acc(static_cast<size_t>(D), 1.f);
  RowCodec c(D, k, Payload::F32, Payload::BF16);
  std::vector<uint8_t> row(static_cast<size_t>(c.combine_bytes()));
  c.encode_combine(x.data(), row.data());
  c.add_combine(row.data(), acc.data());
  for (int64_t i = 0; i < D; ++i) EXPECT_NEAR(acc[size_t(i)], 1.f + x[size_t(i)], std::fabs(x[size_t(i)]) * 0x1p-8f);
}

TEST(Eplb, PlanEvensASkewedLoad) {
  // Zipf-like load over 16 experts on 4 ranks.
  std::vector<int64_t> load;
  for (int e = 0; e < 16; ++e) load.push_back(int64_t(10000 / (e + 1)));
  const auto before = rank_loads({load}, {ExpertPlacement::contiguous(16, 4)})[0];
  const auto plan = plan_placement({load}, 4, 4);
  const auto after = rank_loads({load}, plan)[0];
  auto ratio = [](const std::vector<double>& v) {
    return *std::max_element(v.begin(), v.end()) / (std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()));
  };
  EXPECT_GT(ratio(before), 1.8);
  EXPECT_LT(ratio(after), 1.1);
  // Every expert is somewhere, no rank holds two copies of one, slots are respected.
  std::vector<int> per_rank(4, 0);
  for (int64_t e = 0; e < 16; ++e) {
    const auto& r = plan[0].replicas[size_t(e)];
    ASSERT_FALSE(r.empty());
    EXPECT_EQ(std::set<int>(r.begin(), r.end()).size(), r.size());
    for (int x : r) ++per_rank[size_t(x)];
  }
  for (int n : per_rank) EXPECT_LE(n, 5);
  EXPECT_GT(plan[0].replicas[0].size(), 1u) << "the hottest expert gets a copy";
}

TEST(Eplb, PlacementFilesAreChecked) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string good = (dir / "plan_good.json").string();
  const auto plan = plan_placement({{5, 1, 1, 9}, {1, 1, 1, 1}}, 2, 2);
  write_placement(good, plan);
  const auto p = read_placement(good, 2, 4, 2);
  ASSERT_EQ(p.size(), plan.size());
  for (size_t l = 0; l < p.size(); ++l) EXPECT_EQ(p[l].replicas, plan[l].replicas) << "layer " << l;
  auto bad = [&](const std::string& name, const std::string& text) {
    const std::string path = (dir / name).string();
    std::ofstream(path) << text;
    return error_of([&] { read_placement(path, 2, 4, 2); });
  };
  EXPECT_NE(bad("p1.json", R"({"ep": 2, "layers": [{"layer": 0, "replicas": [[0], [1], [], [0]]}]})")
                .find("expert 2 is placed on no rank"), std::string::npos);
  EXPECT_NE(bad("p2.json", R"({"ep": 2, "layers": [{"layer": 1, "replicas": [[0], [1], [5], [0]]}]})")
                .find("expert 2 is placed on rank 5"), std::string::npos);
  EXPECT_NE(bad("p3.json", R"({"ep": 4, "layers": []})").find("plan is for ep 4"), std::string::npos);
  EXPECT_NE(bad("p5.json", R"({"ep": 2, "layers": [{"layer": 0, "replicas": [[0], [1, 1], [0], [1]]}]})")
                .find("expert 1 is placed on rank 1 twice"), std::string::npos);
  EXPECT_NE(bad("p4.json", R"({"ep": 2, "layers": [{"layer": 0, "replicas": [[0]]}]})")
                .find("lists 1 experts"), std::string::npos);
  EXPECT_NE(bad("p5.json", "{nope").find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace modelone
