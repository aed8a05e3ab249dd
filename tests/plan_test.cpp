// The planner's pieces on a made-up machine profile: cost curves and fits read as documented,
// profiles written and read back (and every kind of bad file refused with its reason), layouts
// checked, and predictions that move the way the engine does (more context, more ranks, a
// slower network, shared cores). Predicted against measured runs: cli_plan_test.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <regex>

#include <unistd.h>

#include "bench/calibrate.h"
#include "dist/plan/cost_model.h"
#include "dist/plan/cost_ops.h"
#include "dist/plan/plan_search.h"
#include "model/base/check.h"
#include "model/io/model_source.h"
#include "model/io/weight_sizes.h"
#include "tests/plan_profile.h"

namespace modelone {
namespace {

std::filesystem::path tmp(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("modelone_plan_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d / name;
}

// Threads 1: the made-up curves unscaled.
ProductCosts product() { return test::made_up_profile().products.at("bf16/bf16/1"); }
MachineProfile profile() { return test::made_up_profile(); }

TEST(PlanCosts, CurvesReadLogLogAndFlatPastTheEnds) {
  const CostCurve c{{1, 64}, {1e-10, 1e-12}};
  EXPECT_DOUBLE_EQ(c.at(1), 1e-10);
  EXPECT_NEAR(c.at(8), 1e-11, 1e-20);  // halfway in log size: halfway in log cost
  EXPECT_DOUBLE_EQ(c.at(0.5), 1e-10);
  EXPECT_DOUBLE_EQ(c.at(1000), 1e-12);
}

TEST(PlanCosts, ProductsPastTheLastRowsReadThePlateau) {
  // The end point slow (a noisy reading): past it, the median of the three within 4x of it.
  const CostCurve c{{1, 64, 128, 256, 512}, {1e-10, 3e-12, 2.5e-12, 2.4e-12, 3.3e-12}};
  EXPECT_DOUBLE_EQ(c.at_plateau(512), 3.3e-12);  // at and before the end: as at()
  EXPECT_DOUBLE_EQ(c.at_plateau(300), c.at(300));
  EXPECT_DOUBLE_EQ(c.at_plateau(2048), 2.5e-12);
  EXPECT_DOUBLE_EQ(c.at(2048), 3.3e-12);
  // Fewer than three points near the end (the head class's 1, 4, 16, 64): the last.
  const CostCurve h{{1, 4, 16, 64}, {1e-10, 3e-11, 1e-11, 9e-12}};
  EXPECT_DOUBLE_EQ(h.at_plateau(2048), 9e-12);
  ProductCosts p;
  p.classes.push_back({double(1 << 25), c});
  EXPECT_NEAR(p.seconds(2048, 1024, 1024, 1 << 25), 2.0 * 2048 * 1024 * 1024 * 2.5e-12, 1e-12);
}

TEST(PlanCosts, ProductsPickTheirClassByWeightBytes) {
  const ProductCosts p = product();
  const double flop = 2.0 * 64 * 1024 * 1024;
  EXPECT_NEAR(p.seconds(64, 1024, 1024, 1 << 10), flop * 5e-12, 1e-12);   // in cache
  EXPECT_NEAR(p.seconds(64, 1024, 1024, 1 << 30), flop * 1e-11, 1e-12);   // from memory
  const double mid = p.seconds(64, 1024, 1024, std::sqrt(double(1 << 17) * double(1 << 25)));
  EXPECT_NEAR(mid, flop * std::sqrt(5e-12 * 1e-11), 1e-12);
  EXPECT_DOUBLE_EQ(p.seconds(1, 2, 2, 8), 1e-6);  // never below one call's cost
  // A third, larger class: weights past the second read toward it, past it take it.
  ProductCosts q = p;
  q.classes.push_back({double(1 << 29), {{1, 512}, {1e-9, 1e-9}}});
  EXPECT_NEAR(q.seconds(64, 1024, 1024, 1 << 25), flop * 1e-11, 1e-12);
  EXPECT_NEAR(q.seconds(64, 1024, 1024, 1 << 27), flop * std::sqrt(1e-11 * 1e-9), 1e-9);
  EXPECT_NEAR(q.seconds(64, 1024, 1024, 1e12), flop * 1e-9, 1e-9);
}

TEST(PlanCosts, LinksByGroupSize) {
  const LinkFit f{{2, 4}, {5e-6, 2e-5}, {10, 8}, {}};
  EXPECT_EQ(f.seconds(1e6, 1), 0);
  EXPECT_NEAR(f.seconds(1e6, 2), 5e-6 + 1e-4, 1e-12);
  EXPECT_NEAR(f.seconds(1e6, 3), 2e-5 + 1.25e-4, 1e-12);      // the next size measured
  EXPECT_NEAR(f.seconds(0, 8), 2e-5 * 7.0 / 3.0, 1e-12);      // past it: latency per peer
}

// The attention core's price carries the partials' merge: each query's heads x head_dim fp32
// output read and written once more, at the profile's read bandwidth.
TEST(PlanCosts, AttendPricesTheMergeAtTheReadBandwidth) {
  MachineProfile fast = profile(), slow = profile();
  fast.read_gbps.at(1) = 1e12, slow.read_gbps.at(1) = 10;
  const auto attend = [](const MachineProfile& p, double q) {
    return OpCosts(p, {1, 1, 1, 1, 1}, PlanWork{}, {}).attend(q, 640, 64, 512);
  };
  const double merge = 2 * 2048.0 * 64 * 512 * 4 / 10e9;  // 0.027 s for a 2048-query step
  EXPECT_NEAR(attend(slow, 2048) - attend(fast, 2048), merge, 1e-9);
  EXPECT_NEAR(attend(slow, 1) - attend(fast, 1), merge / 2048, 1e-12);
}

// Measured points price a group size where the profile has them: their own time at each size,
// log-log between, the smallest's time below it, the fit's bandwidth past the largest; a group
// past the largest measured keeps the fit's latency per peer.
TEST(PlanCosts, LinksFromMeasuredPoints) {
  LinkFit f{{2, 4}, {5e-6, 2e-5}, {10, 8}, {}};
  f.measured = {{{256, 4096, 65536}, {1e-6, 4e-6, 16e-6}}, {{256, 65536}, {3e-6, 3e-5}}};
  EXPECT_DOUBLE_EQ(f.seconds(4096, 2), 4e-6);
  EXPECT_NEAR(f.seconds(1024, 2), 2e-6, 1e-15);               // a quarter of the way in log: x 4^(1/2)
  EXPECT_DOUBLE_EQ(f.seconds(16, 2), 1e-6);
  EXPECT_NEAR(f.seconds(65536 + 1e6, 2), 16e-6 + 1e6 / 10e9, 1e-15);
  EXPECT_DOUBLE_EQ(f.seconds(256, 3), 3e-6);                  // the next size measured
  EXPECT_NEAR(f.seconds(0, 8), 2e-5 * 7.0 / 3.0, 1e-12);
  // Written and read back with the profile.
  MachineProfile p = profile();
  p.links["intra.allgather"] = f;
  const auto path = tmp("measured_links.json");
  write_machine_profile(path.string(), p);
  const LinkFit back = read_machine_profile(path.string(), "test-build").link("intra.allgather");
  ASSERT_EQ(back.measured.size(), 2u);
  EXPECT_EQ(back.measured[0].size, f.measured[0].size);
  EXPECT_EQ(back.measured[1].per_unit, f.measured[1].per_unit);
}

TEST(PlanProfile, WritesAndReadsBack) {
  const auto path = tmp("machine.json");
  MachineProfile made = profile();
  made.together = {2, {{1, 64}, {1.5, 1.1}}};
  write_machine_profile(path.string(), made);
  const MachineProfile p = read_machine_profile(path.string(), "test-build");
  EXPECT_EQ(p.threads, (std::vector<int>{1, 2}));
  EXPECT_EQ(p.products.size(), 6u);
  EXPECT_DOUBLE_EQ(p.product("bf16", "fp8", 2).classes[1].curve.per_unit[1], 0.5e-11);
  EXPECT_EQ(p.link("intra.p2p").ranks, (std::vector<int>{2, 4}));
  EXPECT_EQ(p.nearest_threads(8), 2);
  EXPECT_EQ(p.fixed.at(2).per_row_s, 1e-6);
  EXPECT_EQ(p.fixed.at(1).per_layer_power, 2.5);
  EXPECT_EQ(p.fixed.at(2).per_layer_power, 1);
  // 2e-12 * 1000^2.5 + 1e-6 per row x 3 rows.
  EXPECT_NEAR(p.fixed.at(1).seconds(3, 1000), 2e-12 * std::pow(1000.0, 2.5) + 3e-6, 1e-15);
  EXPECT_DOUBLE_EQ(p.attention.at(1).many.partial_key.per_unit[0], 1e-9);
  EXPECT_DOUBLE_EQ(p.attention.at(2).one.index_key.per_unit[1], 0.5e-9);
  EXPECT_EQ(p.poll_share, 0);
  EXPECT_EQ(p.link("intra.shm").latency_s[1], 2e-6);
  EXPECT_EQ(p.together.ranks, 2);
  EXPECT_EQ(p.together.slowdown.per_unit, (std::vector<double>{1.5, 1.1}));
}

// A profile from before the per-key attention curves, the shared-memory round and the poll share
// reads: no key term, all-to-all on a node (PlanPredict.NodeSharedExchangeOnOneNode), waiters
// taking whole cores.
TEST(PlanProfile, ReadsWithoutKeyCurves) {
  const auto path = tmp("machine_nokey.json");
  auto j = profile().to_json();
  for (auto& [t, a] : j["attention"].items())
    for (const char* k : {"partial_key", "index_key", "partial_key_one", "index_key_one"}) a.erase(k);
  j.erase("poll_share");
  j["links"].erase("intra.shm");
  std::ofstream(path) << j.dump();
  const MachineProfile p = read_machine_profile(path.string(), "test-build");
  EXPECT_TRUE(p.attention.at(1).many.partial_key.size.empty());
  EXPECT_FALSE(p.attention.at(1).many.partial.size.empty());
  EXPECT_EQ(p.poll_share, 1);
  EXPECT_EQ(p.links.count("intra.shm"), 0u);
}

// Calibrate's passes: each point the median of its passes, so a burst that slowed one pass's
// point 100x leaves the profile as the others read it; passes that timed other points refused.
TEST(PlanProfile, PassesKeepEachPointsMedian) {
  std::vector<MachineProfile> passes(3, profile());
  const std::string k = MachineProfile::key("bf16", "bf16", 2);
  const double v = profile().products.at(k).classes[0].curve.per_unit[1];
  passes[1].products.at(k).classes[0].curve.per_unit[1] = 100 * v;
  passes[2].products.at(k).classes[0].curve.per_unit[1] = 1.5 * v;
  passes[1].attention.at(1).one.index_key.per_unit[0] *= 50;
  passes[0].read_gbps.at(2) = 1, passes[2].read_gbps.at(2) = 2;  // the third: 80
  MachineProfile out = profile();
  bench::keep_medians(passes, &out);
  EXPECT_DOUBLE_EQ(out.products.at(k).classes[0].curve.per_unit[1], 1.5 * v);
  EXPECT_EQ(out.attention.at(1).one.index_key.per_unit[0], profile().attention.at(1).one.index_key.per_unit[0]);
  EXPECT_EQ(out.read_gbps.at(2), 2);
  EXPECT_EQ(out.experts.at(k).call_s, profile().experts.at(k).call_s);
  const bench::AnchorTimes a = bench::median_anchors(
      {{{{1, 2, .1, 3}, {30, 4, .4}}}, {{{5, 60, .5, 1}, {7, 8, .8}}}, {{{9, 10, .9, 2}, {11, 12, .2}}}});
  EXPECT_EQ(a[0].prefill, 5);
  EXPECT_EQ(a[0].decode, 10);
  EXPECT_EQ(a[0].decode_untimed, .5);
  EXPECT_EQ(a[0].prefill_untimed, 2);
  EXPECT_EQ(a[1].prefill, 11);
  EXPECT_EQ(a[1].decode, 8);
  EXPECT_EQ(a[1].decode_untimed, .4);
  // `together`, timed after each pass: each point's median (one row's 1.79 in a slow minute of
  // the memory set aside by the two others).
  const Together t = bench::median_together({{2, {{1, 64}, {1.79, 1.2}}}, {2, {{1, 64}, {0.97, 1.0}}},
                                             {2, {{1, 64}, {1.05, 1.1}}}});
  EXPECT_EQ(t.ranks, 2);
  EXPECT_EQ(t.slowdown.per_unit, (std::vector<double>{1.05, 1.1}));
  EXPECT_EQ(bench::median_together({Together{}}).slowdown.size.size(), 0u);  // one rank: none timed
  EXPECT_THROW(bench::median_together({{2, {{1}, {1.5}}}, {2, {{1, 64}, {1.5, 1.1}}}}), Error);
  passes[2].products.at(k).classes[0].curve.size.push_back(1024);
  passes[2].products.at(k).classes[0].curve.per_unit.push_back(v);
  EXPECT_THROW(bench::keep_medians(passes, &out), Error);
}

// Passes run between readings of uneven cores are set aside, with their anchors' steps, where
// another pass ran on even ones; all are kept where none did.
TEST(PlanProfile, PassesOnUnevenCoresSetAside) {
  auto make = [&] {
    std::vector<MachineProfile> passes(3, profile());
    for (size_t i = 0; i < 3; ++i) passes[i].read_gbps.at(2) = double(i + 1);
    std::map<int, std::vector<bench::AnchorTimes>> anchors;
    for (int i = 0; i < 3; ++i) anchors[2].push_back({{{double(i + 1)}, {0}}});
    return std::pair{passes, anchors};
  };
  auto [passes, anchors] = make();
  bench::keep_even_passes({true, false, true}, &passes, &anchors);
  ASSERT_EQ(passes.size(), 2u);
  EXPECT_EQ(passes[0].read_gbps.at(2), 1);
  EXPECT_EQ(passes[1].read_gbps.at(2), 3);
  ASSERT_EQ(anchors[2].size(), 2u);
  EXPECT_EQ(anchors[2][1][0].prefill, 3);
  for (const std::vector<bool>& all : {std::vector<bool>{false, false, false}, std::vector<bool>{true, true, true}}) {
    auto [p, a] = make();
    bench::keep_even_passes(all, &p, &a);
    EXPECT_EQ(p.size(), 3u);
    EXPECT_EQ(a[2].size(), 3u);
  }
}

// The engine's fixed costs: the narrow anchor's remainders exactly; the wide anchor's from its
// untimed time and the narrow's calls, so 12 ms of a 60 ms wide step that the kernels' prices
// miss (a slow spell between them) is not taken as 4 ms a layer of fixed cost.
TEST(PlanProfile, FixedCostsOfAWideDecodeFromItsUntimedTime) {
  // ms: narrow 4 layers, decode 0.2 (0.04 untimed, 0.04 priced): 0.04 a layer, 0.03 of it timed.
  bench::AnchorFit narrow{768, 4, {5e-3, 0.2e-3, 0.04e-3}, 1e-3, 0.04e-3, 128};
  // The wide prefill: 30 ms of 700 outside the timers (10 a layer), 60 beyond its price.
  bench::AnchorFit wide{49152, 3, {700e-3, 60e-3, 0.3e-3, 30e-3}, 640e-3, 48e-3, 128};
  const auto fit = [&] { return bench::fit_engine_fixed({narrow, wide}); };
  EngineFixed f = fit();
  EXPECT_NEAR(f.seconds(1, 768), 0.04e-3, 1e-12);    // (0.2 - 0.04) / 4
  EXPECT_NEAR(f.seconds(128, 768), 1e-3, 1e-12);     // (5 - 1) / 4
  const double decode_wide = f.seconds(1, 49152);    // 0.1 untimed + 0.03 calls, per-row cost above
  EXPECT_LT(decode_wide, 0.2e-3);
  EXPECT_NEAR(f.seconds(128, 49152), 10.03e-3, 1e-9);  // the prefill: untimed and the calls
  wide.measured.prefill = 760e-3;  // a slower prefill, the same untimed time: the same fit
  EXPECT_DOUBLE_EQ(fit().seconds(128, 49152), f.seconds(128, 49152));
  wide.measured.decode = 70e-3;  // a slower decode step, the same untimed time: the same fit
  EXPECT_DOUBLE_EQ(fit().seconds(1, 49152), decode_wide);
  wide.measured.decode_untimed = 3e-3;  // 1 ms a layer outside the timers: 1.03 with the calls
  EXPECT_NEAR(fit().seconds(1, 49152), 1.03e-3, 1e-9);
  // Each anchor's prefill at its own rows: the narrow one at 2048, 10 ms a layer beyond its price.
  narrow.rows = 2048, narrow.measured.prefill = 41e-3;
  EXPECT_NEAR(fit().seconds(2048, 768), 10e-3, 1e-12);
  EXPECT_NEAR(fit().seconds(128, 49152), 10.03e-3, 0.1e-3);
}

// Writes text as a profile and expects the read to fail with a message matching `why`.
void expect_bad(const std::string& text, const std::string& why, const std::string& build = "test-build") {
  const auto path = tmp("bad_machine.json");
  std::ofstream(path) << text;
  try {
    read_machine_profile(path.string(), build);
    ADD_FAILURE() << "read a bad profile: " << why;
  } catch (const Error& e) {
    EXPECT_TRUE(std::regex_search(e.what(), std::regex(why))) << e.what();
  }
}

TEST(PlanProfile, RefusesBadFiles) {
  const std::string good = profile().to_json().dump();
  expect_bad(good.substr(0, good.size() / 2), "is not JSON");
  expect_bad("[1, 2]", "is not a profile of format modelone-machine-1");
  expect_bad(good, "made by another build of modelone", "other-build");
  auto j = profile().to_json();
  j.erase("products");
  expect_bad(j.dump(), "has no \"products\"");
  j = profile().to_json();
  j["links"]["intra.p2p"]["gbps"][0] = -1;
  expect_bad(j.dump(), "links.intra.p2p.gbps\\[0\\] is not a positive number");
  j = profile().to_json();
  j["products"]["bf16/bf16/1"]["classes"][0]["curve"]["size"] = {64, 1, 512};
  expect_bad(j.dump(), "sizes do not increase");
  j = profile().to_json();
  j["links"]["intra.p2p"]["measured"] = nlohmann::json::array({{{"size", {256}}, {"per_unit", {1e-6}}}});
  expect_bad(j.dump(), "links.intra.p2p.measured needs one curve per group size");
  j = profile().to_json();
  j["fixed"].erase("2");
  expect_bad(j.dump(), "lacks the attention, bandwidth or fixed costs of 2 threads");
  j = profile().to_json();
  j["together"] = {{"ranks", 1}, {"slowdown", {{"size", {1}}, {"per_unit", {1.5}}}}};
  expect_bad(j.dump(), "together.ranks is not a count of ranks of at least 2");
  j["together"] = {{"ranks", 2}, {"slowdown", {{"size", {1}}, {"per_unit", {-1.5}}}}};
  expect_bad(j.dump(), "together.slowdown holds a value that is not positive");
}

TEST(PlanProfile, MissingFileIsOneLine) {
  EXPECT_THROW(read_machine_profile(tmp("none.json").string(), ""), Error);
}

TEST(PlanLayout, ChecksWhatDoesNotDivide) {
  const ModelConfig cfg = resolve_model("tiny", {}).cfg;
  auto err = [&](PlanLayout l) {
    try {
      check_plan_layout(cfg, l);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(err({1, 4, 1, 2, 4}), "");
  EXPECT_NE(err({1, 4, 1, 3, 1}).find("--cp 3 does not divide the world of 4 ranks"), std::string::npos);
  EXPECT_NE(err({1, 6, 1, 2, 3}).find("--ep 3 cannot be laid over --cp 2"), std::string::npos);
  EXPECT_NE(err({2, 8, 1, 1, 16}).find("more expert-parallel ranks than the model's 8 experts"), std::string::npos);
  EXPECT_NE(err({0, 1, 1, 1, 1}).find("--nodes 0"), std::string::npos);
}

TEST(PlanNetwork, Parses) {
  EXPECT_DOUBLE_EQ(parse_network("100g").gbit, 100);
  EXPECT_DOUBLE_EQ(parse_network("100g").latency_s, 2e-6);
  EXPECT_DOUBLE_EQ(parse_network("25g,5us").latency_s, 5e-6);
  EXPECT_DOUBLE_EQ(parse_network("400gbit,1.5us").gbit, 400);
  for (const char* bad : {"fast", "100g,5ms", "-3g", "100g,", "100x"})
    EXPECT_THROW(parse_network(bad), Error) << bad;
}

PlanPrediction plan(const ModelConfig& c, PlanLayout l, int64_t context, const NetworkModel& net = {},
                    int cores = 0) {
  PlanWork w;
  w.context = context;
  w.cores_per_node = cores;
  return predict(c, l, w, profile(), net);
}

TEST(PlanPredict, MovesAsTheEngineDoes) {
  const ModelConfig cut = resolve_model("v4-flash", {"num_hidden_layers=4", "n_routed_experts=16"}).cfg;
  // One rank: no exchange; two expert-parallel ranks exchange rows every layer.
  EXPECT_EQ(plan(cut, {1, 1, 1, 1, 1}, 4096).decode.parts.at("moe_exchange").total(), 0);
  EXPECT_GT(plan(cut, {1, 2, 1, 1, 2}, 4096).decode.parts.at("moe_exchange").exchange, 0);
  // The indexer scans every closed entry: decode grows with the context by at least the scan of
  // the added entries (64 heads x 128 at the made-up curve's cheapest 1e-11 s per key x dim).
  const double grown = plan(cut, {1, 1, 1, 1, 1}, 262144).decode.parts.at("indexer").compute -
                       plan(cut, {1, 1, 1, 1, 1}, 8192).decode.parts.at("indexer").compute;
  EXPECT_GT(grown, (262144 - 8192) / 4 * 64 * 128 * 1e-11);
  // Splitting a long prompt over two ranks nearly halves the prefill.
  const double one = plan(cut, {1, 1, 1, 1, 1}, 16384).ttft_seconds;
  const double two = plan(cut, {1, 2, 1, 2, 2}, 16384).ttft_seconds;
  EXPECT_LT(two, 0.7 * one);
  // Across nodes on a slow link the exchange costs more than on a fast one.
  const double slow = plan(cut, {4, 2, 1, 2, 8}, 4096, parse_network("10g,20us")).decode.parts.at("moe_exchange").exchange;
  const double fast = plan(cut, {4, 2, 1, 2, 8}, 4096, parse_network("400g,1us")).decode.parts.at("moe_exchange").exchange;
  EXPECT_GT(slow, 1.5 * fast);
  // Four ranks on two cores time-slice while all four compute: twice the compute of the same
  // ranks on four cores. Prefill at cp 4: every rank attends. Decode at cp 1: the attention runs
  // on one rank while the others wait (no stretch); the routed experts run on all four.
  const auto on = [&](int cores, const PlanLayout& l, bool pre, const char* part) {
    const PlanPrediction p = plan(cut, l, 4096, {}, cores);
    return (pre ? p.prefill : p.decode).parts.at(part).compute;
  };
  const PlanLayout cp4 = {1, 4, 1, 4, 4}, cp1 = {1, 4, 1, 1, 4};
  EXPECT_NEAR(on(2, cp4, true, "attention") / on(4, cp4, true, "attention"), 2.0, 1e-9);
  EXPECT_NEAR(on(2, cp1, false, "attention") / on(4, cp1, false, "attention"), 1.0, 1e-9);
  const double experts = on(2, cp1, false, "moe_experts") / on(4, cp1, false, "moe_experts");
  EXPECT_GT(experts, 1.5);  // the routed experts doubled, the router and shared expert not
  EXPECT_LT(experts, 2.0);
  // Waiters that take a whole core each (poll_share 1, as profiles before it read): the decode's
  // attention on one rank stretches as if all four computed.
  MachineProfile polling = profile();
  polling.poll_share = 1;
  PlanWork w4;
  w4.context = 4096;
  w4.cores_per_node = 2;
  const double polled = predict(cut, cp1, w4, polling, {}).decode.parts.at("attention").compute;
  EXPECT_NEAR(polled / on(2, cp1, false, "attention"), 2.0, 1e-9);
  // One sequence's decode: replicas (dp) beside its group leave its experts' work as it was (its
  // row goes to one ep group whole, not a share of it to each).
  const double alone = plan(cut, {1, 2, 1, 2, 2}, 4096, {}, 8).decode.parts.at("moe_experts").compute;
  const double beside = plan(cut, {1, 4, 1, 2, 2}, 4096, {}, 8).decode.parts.at("moe_experts").compute;
  EXPECT_NEAR(beside / alone, 1.0, 1e-9);
  // A 1M prompt: 512 steps of 2048 tokens at cp 1, priced from samples.
  EXPECT_EQ(plan(cut, {1, 1, 1, 1, 1}, 1 << 20).prefill_steps, 512);
}

// The MoE's exchange as the engine's auto transport makes it: node-shared memory while the ep
// group is on one node (the profile's intra.shm round, out and back), MPI all-to-all each way
// once it spans nodes; a profile from before intra.shm prices all-to-all on a node too.
TEST(PlanPredict, NodeSharedExchangeOnOneNode) {
  const ModelConfig cut = resolve_model("v4-flash", {"num_hidden_layers=4", "n_routed_experts=16"}).cfg;
  const auto exchange = [&](const MachineProfile& prof, const PlanLayout& l) {
    PlanWork w;
    w.context = 4096;
    return predict(cut, l, w, prof, {}).decode.parts.at("moe_exchange").exchange;
  };
  MachineProfile old = profile();
  old.links.erase("intra.shm");
  const PlanLayout node = {1, 4, 1, 1, 4}, nodes = {4, 2, 1, 2, 8};
  // 4 layers, one row of 6 experts x 4096 fp32, 3/4 of it to other ranks: latency-bound.
  const double row = 6 * 4096 * 4 * 0.75;
  EXPECT_NEAR(exchange(profile(), node), 4 * (2e-6 + row / 20e9), 1e-12);
  EXPECT_NEAR(exchange(old, node), 4 * 2 * (2e-5 + row / 8e9), 1e-12);
  EXPECT_DOUBLE_EQ(exchange(profile(), nodes), exchange(old, nodes));
}

// A group smaller than a node whose ranks outnumber its cores is priced by the fit measured
// beside polling waiters; a group of the whole node, a node with cores for every rank, or a
// profile without that fit keep the plain one.
TEST(PlanPredict, SmallGroupsBesidePollers) {
  MachineProfile prof = profile();
  prof.links["intra_polled.allgather"] = {{2, 3}, {4e-5, 6e-5}, {5, 5}, {}};
  const auto gather = [&](const MachineProfile& p, int n, int cores) {
    PlanWork w;
    w.cores_per_node = cores;
    return OpCosts(p, {1, 4, 1, 2, 4}, w, {}).collective("allgather", 1e6, n, false);
  };
  EXPECT_NEAR(gather(prof, 2, 2), 4e-5 + 1e6 / 5e9, 1e-12);
  EXPECT_NEAR(gather(prof, 2, 4), 5e-6 + 1e6 / 10e9, 1e-12);
  EXPECT_NEAR(gather(prof, 4, 2), 2e-5 + 1e6 / 8e9, 1e-12);
  EXPECT_NEAR(gather(profile(), 2, 2), 5e-6 + 1e6 / 10e9, 1e-12);
}

// Ranks within the cores wait spinning: their groups are priced by the links timed so
// (intra_cores) where the profile has them; ranks past the cores keep the links timed with MPI
// yielding, as does a profile without them.
TEST(PlanPredict, RanksWithinTheCoresReadTheirOwnLinks) {
  MachineProfile prof = profile();
  prof.links["intra_cores.allgather"] = {{2}, {1e-6}, {20}, {}};
  const auto gather = [&](const MachineProfile& p, int rpn, int cores) {
    PlanWork w;
    w.cores_per_node = cores;
    return OpCosts(p, {1, rpn, 1, 2, rpn}, w, {}).collective("allgather", 1e6, 2, false);
  };
  EXPECT_NEAR(gather(prof, 2, 2), 1e-6 + 1e6 / 20e9, 1e-12);
  EXPECT_NEAR(gather(prof, 4, 4), 1e-6 + 1e6 / 20e9, 1e-12);
  EXPECT_NEAR(gather(prof, 4, 2), 5e-6 + 1e6 / 10e9, 1e-12);
  EXPECT_NEAR(gather(profile(), 2, 2), 5e-6 + 1e6 / 10e9, 1e-12);
}

// The routed experts take the grouped kernel's costs once the busiest expert passes
// kGemvMaxRows rows, as the engine does: 16 experts at a mean of 6 rows (busiest ~12) do, at 3
// (busiest ~7) they run as products.
TEST(PlanPredict, ExpertKernelByTheBusiestExpert) {
  MachineProfile dear = profile();
  for (auto& [k, e] : dear.experts)
    for (auto& c : e.classes)
      for (double& v : c.curve.per_unit) v *= 10;
  const auto experts = [&](const MachineProfile& p, double rows_each) {
    return OpCosts(p, {1, 1, 1, 1, 1}, PlanWork{}, {}).experts(16, rows_each, 4096, 2048);
  };
  EXPECT_NEAR(experts(dear, 6), 10 * experts(profile(), 6), 1e-12);
  EXPECT_DOUBLE_EQ(experts(dear, 3), experts(profile(), 3));
}

// One prompt over a cp x ep group: idle dp replicas beside it take none of its experts' rows.
TEST(PlanPredict, IdleReplicasTakeNoRowsOfAPrompt) {
  const ModelConfig cut = resolve_model("v4-flash", {"num_hidden_layers=4", "n_routed_experts=16"}).cfg;
  const auto experts = [&](int nodes) {
    return plan(cut, {nodes, 1, 1, 2, 2}, 8192).prefill.parts.at("moe_experts").compute;
  };
  EXPECT_DOUBLE_EQ(experts(4), experts(2));  // dp 2 and dp 1: the same group's work
  EXPECT_DOUBLE_EQ(experts(8), experts(2));
}

// One sequence's decode at cp > 1 splits the shared expert by rows over the cp group, as
// DecodeSplit does: half its products on each of two ranks, and three collectives a layer (the
// token out, the activations on every rank, the output rows back). A batch's decode (the
// engine's batch path) and cp 1 keep it whole on the home rank.
TEST(PlanPredict, OneSequencesDecodeSplitsTheSharedExpert) {
  const ModelConfig cut = resolve_model("v4-flash", {"num_hidden_layers=4", "n_routed_experts=16"}).cfg;
  const double D = double(cut.hidden_size), I = double(cut.moe_inter);
  const PlanLayout cp2 = {1, 2, 1, 2, 2}, cp1 = {1, 2, 1, 1, 2};
  const MachineProfile prof = profile();
  const PlanWork plain;
  const OpCosts op(prof, cp2, plain, {});
  const auto shared = [&](double split) { return 2 * op.product(1, D, I / split) + op.product(1, I, D / split); };
  const auto experts = [&](const PlanLayout& l, int64_t batch) {
    PlanWork w;
    w.context = 4096;
    w.batch = batch;
    return predict(cut, l, w, prof, {}).decode.parts.at("moe_experts");
  };
  EXPECT_NEAR(experts(cp1, 1).compute - experts(cp2, 1).compute, 4 * (shared(1) - shared(2)), 1e-12);
  const double gathers = 2 * op.collective("allgather", D * 4 / 2, 2, false) +
                         op.collective("allgather", I * 4 / 2, 2, false);
  EXPECT_NEAR(experts(cp2, 1).exchange, 4 * gathers, 1e-12);
  EXPECT_EQ(experts(cp1, 1).exchange, 0);
  EXPECT_EQ(experts(cp2, 2).exchange, 0);
}

// Ranks computing at once on one node slow one another as the profile's Together measured
// (OpCosts::beside): 1.5x at one row on two ranks here. A decode at cp 2 on one node of two
// cores prices each half of the vocabulary head 1.5x a half alone (0.75 of the one-rank head, not
// 0.5); on two nodes of one rank each, or on a node of one core (time slicing instead), nothing
// shared; four cores, two busy ranks of two threads each: the line between one core and the
// measured two held at 1.5, over the ranks' own two threads' (already in their costs).
TEST(PlanPredict, BusyRanksOfANodeSlowOneAnother) {
  const ModelConfig cut = resolve_model("v4-flash", {"num_hidden_layers=4", "n_routed_experts=16"}).cfg;
  MachineProfile prof = profile();
  prof.together = {2, {{1, 64}, {1.5, 1.1}}};
  EXPECT_DOUBLE_EQ(prof.together.at(1, 1), 1);
  EXPECT_DOUBLE_EQ(prof.together.at(2, 1), 1.5);
  EXPECT_DOUBLE_EQ(prof.together.at(4, 64), 1.1);
  EXPECT_DOUBLE_EQ(MachineProfile{}.together.at(4, 1), 1);  // profiles before it
  const auto head = [&](const PlanLayout& l, int cores) {
    PlanWork w;
    w.context = 4096;
    w.cores_per_node = cores;
    return predict(cut, l, w, prof, {}).decode.parts.at("head").compute;
  };
  const double one = head({1, 1, 1, 1, 1}, 2);
  EXPECT_NEAR(head({1, 2, 1, 2, 2}, 2) / one, 0.75, 1e-3);
  EXPECT_NEAR(head({2, 1, 1, 2, 2}, 2) / one, 0.5, 1e-3);
  EXPECT_NEAR(head({1, 2, 1, 2, 2}, 1) / one, 1.0, 1e-3);  // sliced: 2 ranks on a core
  EXPECT_NEAR(head({1, 2, 2, 2, 2}, 4) / head({1, 1, 2, 1, 1}, 4), 0.5, 1e-3);
  // The routed experts of a decode row at ep 2 run on both ranks: slowed likewise.
  PlanWork w;
  w.context = 4096;
  w.cores_per_node = 2;
  const double apart = predict(cut, {1, 2, 1, 1, 2}, w, profile(), {}).decode.parts.at("moe_experts").compute;
  EXPECT_GT(predict(cut, {1, 2, 1, 1, 2}, w, prof, {}).decode.parts.at("moe_experts").compute, 1.3 * apart);
}

// The busiest ep rank's routed rows against draws: rows each pick top_k distinct experts.
TEST(PlanPredict, BusiestRankAgainstDraws) {
  std::mt19937 rng(11);
  const auto drawn = [&](int rows, int E, int k, int ep) {
    std::vector<int> ids(size_t(E), 0);
    std::iota(ids.begin(), ids.end(), 0);
    double sum = 0;
    const int trials = 3000;
    for (int t = 0; t < trials; ++t) {
      std::vector<int> load(size_t(ep), 0);
      for (int r = 0; r < rows; ++r) {
        std::shuffle(ids.begin(), ids.end(), rng);
        for (int j = 0; j < k; ++j) ++load[size_t(ids[size_t(j)] / (E / ep))];
      }
      sum += *std::max_element(load.begin(), load.end());
    }
    return sum / trials;
  };
  // rows, experts, top-k, ep: a decode row over the cut's 16 experts and V4-Flash's 256, batches.
  for (auto [rows, E, k, ep] : {std::array{1, 16, 6, 2}, {1, 256, 6, 16}, {4, 256, 6, 16},
                                {8, 16, 6, 4}, {64, 256, 8, 16}, {16, 384, 6, 8}}) {
    const double d = drawn(rows, E, k, ep);
    EXPECT_NEAR(busiest_rank_rows(rows, E, k, ep), d, 0.05 * d) << rows << " rows, " << k << " of " << E << ", ep " << ep;
  }
  EXPECT_EQ(busiest_rank_rows(3, 16, 6, 1), 18);  // one rank takes every row
}

TEST(PlanSearch, FittingLayoutsFirstThenTheGoal) {
  const ModelSource ms = resolve_model("v4-flash", {"num_hidden_layers=4", "n_routed_experts=16"});
  PlanQuery q;
  q.layout = {1, 4, 1, 0, 0, 0};
  q.work.context = 8192;
  q.weights = uniform_weight_bytes(ms.cfg, DType::BF16);
  q.node_memory_bytes = 16.0 * double(1ll << 30);  // 4 GiB a rank: only wide expert splits fit
  const MachineProfile prof = profile();
  const std::vector<PlanRow> rows = plan_search(ms.cfg, q, prof);
  ASSERT_FALSE(rows.empty());
  EXPECT_TRUE(rows.front().fits);
  bool seen_unfit = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    seen_unfit |= !rows[i].fits;
    if (seen_unfit) {
      EXPECT_FALSE(rows[i].fits);
    }
    if (i > 0 && rows[i].fits == rows[i - 1].fits) {
      EXPECT_LE(goal_cost(rows[i - 1], "decode"), goal_cost(rows[i], "decode"));
    }
  }
  EXPECT_TRUE(seen_unfit);
}

}  // namespace
}  // namespace modelone
