// The sampler (model/sample/sampler.h) and stop strings (model/sample/stop_strings.h) against
// hand-computed cases, and the draw against its distribution (chi-square).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "model/base/check.h"
#include "model/sample/sampler.h"
#include "model/sample/stop_strings.h"

namespace modelone {
namespace {

SamplingParams sampled(double t, uint64_t seed = 7) {
  SamplingParams p;
  p.temperature = t;
  p.seed = seed;
  return p;
}

TEST(Sampling, GreedyIsTheArgmaxWithTiesToTheLowerId) {
  const std::vector<float> l = {0.5f, 2.f, -1.f, 2.f};
  SamplingParams p;  // temperature 0
  p.top_k = 1;       // ignored when greedy
  EXPECT_EQ(sample_token(p, l.data(), 4, {}, 0, 0, 0), 1);
  p.logit_bias = {{3, 0.25f}};
  EXPECT_EQ(sample_token(p, l.data(), 4, {}, 0, 0, 0), 3);
}

TEST(Sampling, BadOptionsNameThemselves) {
  auto err = [](SamplingParams p) {
    try {
      p.validate(10);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  SamplingParams p;
  EXPECT_EQ(err(p), "no error");
  p.temperature = -0.5;
  EXPECT_NE(err(p).find("temperature -0.5"), std::string::npos) << err(p);
  p = {};
  p.temperature = NAN;
  EXPECT_NE(err(p).find("temperature"), std::string::npos);
  for (double v : {0.0, 1.5, -0.1}) {
    p = {};
    p.top_p = v;
    EXPECT_NE(err(p).find("top_p"), std::string::npos) << v;
  }
  p = {};
  p.min_p = 1.5;
  EXPECT_NE(err(p).find("min_p 1.5"), std::string::npos);
  p = {};
  p.top_k = -1;
  EXPECT_NE(err(p).find("top_k -1"), std::string::npos);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_NE(err(p).find("repetition_penalty 0"), std::string::npos);
  p = {};
  p.presence_penalty = 2.5;
  EXPECT_NE(err(p).find("presence_penalty 2.5"), std::string::npos);
  p = {};
  p.frequency_penalty = -3;
  EXPECT_NE(err(p).find("frequency_penalty -3"), std::string::npos);
  p = {};
  p.logit_bias = {{10, 1.f}};
  EXPECT_NE(err(p).find("logit_bias names token 10"), std::string::npos);
  p.logit_bias = {{2, 101.f}};
  EXPECT_NE(err(p).find("logit_bias value 101"), std::string::npos);
}

TEST(Sampling, PenaltiesByHand) {
  // Prompt {0, 1}, output {2, 2, 3}: repetition 2 on every seen token, frequency 0.5 per
  // output count, presence 0.25 once per output token, bias +1 on token 4.
  SamplingParams p;
  p.repetition_penalty = 2;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 0.25;
  p.logit_bias = {{4, 1.f}};
  std::vector<float> l = {4.f, -1.f, 3.f, 1.f, 0.5f, 2.f};
  apply_penalties(p, {0, 1, 2, 2, 3}, 2, l.data(), 6);
  EXPECT_FLOAT_EQ(l[0], 2.f);                      // 4 / 2
  EXPECT_FLOAT_EQ(l[1], -2.f);                     // -1 * 2
  EXPECT_FLOAT_EQ(l[2], 1.5f - 2 * 0.5f - 0.25f);  // 3 / 2, then two outputs
  EXPECT_FLOAT_EQ(l[3], 0.5f - 0.5f - 0.25f);      // 1 / 2, then one output
  EXPECT_FLOAT_EQ(l[4], 1.5f);                     // bias only (never seen)
  EXPECT_FLOAT_EQ(l[5], 2.f);                      // untouched
}

TEST(Sampling, DistributionAfterTemperatureMinPTopKTopP) {
  const std::vector<float> l = {2.f, 1.f, 0.f, -1.f, 1.f};
  SamplingParams p = sampled(0.5);
  auto d = sampling_distribution(p, l.data(), 5);
  // exp(2 * (l - 2)): 1, e^-2, e^-4, e^-6, e^-2; order by p, ties to the lower id.
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[0].first, 0);
  EXPECT_EQ(d[1].first, 1);
  EXPECT_EQ(d[2].first, 4);
  const double z = 1 + 2 * std::exp(-2.0) + std::exp(-4.0) + std::exp(-6.0);
  EXPECT_NEAR(d[0].second, 1 / z, 1e-12);
  p.min_p = 0.1;  // drops e^-4 and e^-6 (below 0.1 of the best)
  EXPECT_EQ(sampling_distribution(p, l.data(), 5).size(), 3u);
  p.min_p = 0;
  p.top_k = 2;
  d = sampling_distribution(p, l.data(), 5);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NEAR(d[0].second, 1 / (1 + std::exp(-2.0)), 1e-12);
  p.top_k = 0;
  p.top_p = 0.8;  // the best alone holds 1 / z = 0.78: one more token reaches 0.8
  d = sampling_distribution(p, l.data(), 5);
  ASSERT_EQ(d.size(), 2u);
  p.top_p = 0.5;
  EXPECT_EQ(sampling_distribution(p, l.data(), 5).size(), 1u);
}

TEST(Sampling, DrawsFollowTheDistribution) {
  // Chi-square of 20000 draws (positions 0..19999 of one sequence) against the renormalised
  // probabilities of temperature 0.8 / top-p 0.9 over 6 tokens. Fixed seed: no flake.
  const std::vector<float> l = {1.f, 0.5f, 0.f, -0.5f, 0.2f, -2.f};
  SamplingParams p = sampled(0.8, 1234);
  p.top_p = 0.9;
  const auto d = sampling_distribution(p, l.data(), 6);
  std::map<int32_t, int64_t> count;
  const int64_t n = 20000;
  for (int64_t pos = 0; pos < n; ++pos) ++count[sample_token(p, l.data(), 6, {}, 0, 3, pos)];
  double chi2 = 0;
  int64_t inside = 0;
  for (const auto& [id, prob] : d) {
    const double e = prob * double(n);
    chi2 += (double(count[id]) - e) * (double(count[id]) - e) / e;
    inside += count[id];
  }
  EXPECT_EQ(inside, n) << "a token outside top-p was drawn";
  // exp(l / 0.8) normalised: 0.423, 0.226, 0.155, 0.121 reach 0.925 >= 0.9, so top-p keeps 4:
  // df = 3, whose 0.999 quantile is 16.27.
  EXPECT_EQ(d.size(), 4u);
  EXPECT_LT(chi2, 16.27);
}

TEST(Sampling, TheDrawIsKeyedBySeedSequenceAndPosition) {
  EXPECT_EQ(sample_uniform(1, 2, 3), sample_uniform(1, 2, 3));
  EXPECT_NE(sample_uniform(1, 2, 3), sample_uniform(2, 2, 3));
  EXPECT_NE(sample_uniform(1, 2, 3), sample_uniform(1, 3, 3));
  EXPECT_NE(sample_uniform(1, 2, 3), sample_uniform(1, 2, 4));
  double lo = 1, hi = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    const double u = sample_uniform(9, 0, i);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_GE(lo, 0);
  EXPECT_LT(hi, 1);
  EXPECT_LT(lo, 0.01);
  EXPECT_GT(hi, 0.99);
}

TEST(StopStrings, CutBeforeTheStopAndHoldBackWhatMightStartOne) {
  StopStrings s({"world", "##"});
  EXPECT_EQ(s.push("hello "), "hello ");
  EXPECT_EQ(s.push("wor"), "");  // could be the start of "world"
  EXPECT_EQ(s.push("ld and more"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.text(), "hello ");
  EXPECT_EQ(s.push("x"), "");

  StopStrings t({"world"});
  EXPECT_EQ(t.push("wo"), "");
  EXPECT_EQ(t.push("ndrous"), "wondrous");  // not a stop after all
  EXPECT_EQ(t.push(" w"), " ");  // only the "w" could start the stop
  EXPECT_EQ(t.finish(), "w");
  EXPECT_FALSE(t.stopped());
  EXPECT_EQ(t.text(), "wondrous w");

  StopStrings u({"ab"});
  EXPECT_EQ(u.push("xa"), "x");
  EXPECT_EQ(u.push("b"), "");  // completes across two pieces
  EXPECT_TRUE(u.stopped());
  EXPECT_EQ(u.text(), "x");
  EXPECT_THROW(StopStrings({""}), Error);
}

}  // namespace
}  // namespace modelone
