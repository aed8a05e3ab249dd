// Parity with Hugging Face transformers 5.17 on the tiny DeepSeek-V4 fixture
// (tests/data/hf_v4_tiny, made by make_hf_v4_fixture.py): prefill logits, per-layer hidden
// states, stepwise decode with the cache, and greedy generation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "tests/support.h"

namespace modelone::test {
namespace {

constexpr float kTol = 1e-3f;
constexpr int64_t kPrefill = 64;  // the fixture's P

class HfParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = data_dir(GetParam());
    ref_ = std::make_unique<Reference>(load_reference(dir_));
    ids_ = ref_->ids("input_ids");
  }
  std::string dir_;
  std::unique_ptr<Reference> ref_;
  std::vector<int32_t> ids_;
};

TEST_P(HfParity, PrefillLogitsAndHiddenStates) {
  EngineOptions opt;
  opt.capture_hidden = true;
  auto m = make_model(dir_, opt);
  const int64_t T = int64_t(ids_.size()), V = m->ms.cfg.vocab_size;
  PrefillOptions all;
  all.all_logits = true;
  const std::vector<float> logits = m->engine->prefill(ids_, all);

  // Hidden states first, so a failure names the first layer that drifts.
  const auto& hid = m->engine->hidden();
  const int64_t L = m->ms.cfg.num_layers;
  for (int64_t i = 0; i < L; ++i) {  // hidden_i: streams entering layer i
    const auto ref = ref_->f32("hidden_" + std::to_string(i));
    ASSERT_EQ(ref.size(), hid[size_t(i)].size());
    const Diff d = max_diff(hid[size_t(i)].data(), ref.data(), ref.size());
    EXPECT_LE(d.max_abs, kTol) << "hidden state entering layer " << i << " drifts first at token "
                               << d.at / size_t(m->ms.cfg.hc_mult * m->ms.cfg.hidden_size);
    if (d.max_abs > kTol) return;
  }
  const auto ref_final = ref_->f32("hidden_" + std::to_string(L));
  const Diff df = max_diff(hid.back().data(), ref_final.data(), ref_final.size());
  EXPECT_LE(df.max_abs, kTol) << "final normed hidden state, after the last layer";

  const auto ref = ref_->f32("logits");
  ASSERT_EQ(logits.size(), size_t(T * V));
  std::printf("[   info   ] prefill logits max |diff| vs transformers: %.3g\n",
              max_diff(logits.data(), ref.data(), ref.size()).max_abs);
  for (int64_t t = 0; t < T; ++t) {
    const Diff d = max_diff(logits.data() + t * V, ref.data() + t * V, size_t(V));
    EXPECT_LE(d.max_abs, kTol) << "prefill logits at position " << t;
  }
}

TEST_P(HfParity, StepwiseDecodeMatchesCachedTransformers) {
  auto m = make_model(dir_);
  const int64_t T = int64_t(ids_.size()), V = m->ms.cfg.vocab_size;
  const auto ref = ref_->f32("stepwise_logits");  // [T - P, V]
  m->engine->prefill({ids_.begin(), ids_.begin() + kPrefill});
  float worst = 0;
  for (int64_t t = kPrefill; t < T; ++t) {
    m->engine->decode(&ids_[size_t(t)]);
    const std::vector<float>& logits = m->engine->last_logits();
    const Diff d = max_diff(logits.data(), ref.data() + (t - kPrefill) * V, size_t(V));
    EXPECT_LE(d.max_abs, kTol) << "decode logits at position " << t;
    worst = std::max(worst, d.max_abs);
  }
  std::printf("[   info   ] stepwise decode logits max |diff| vs transformers: %.3g\n", worst);
}

TEST_P(HfParity, GreedyGenerationIsIdentical) {
  auto m = make_model(dir_);
  const auto gen = ref_->ids("generated");  // prompt (P) + continuation
  const int64_t V = m->ms.cfg.vocab_size;
  m->engine->prefill({ids_.begin(), ids_.begin() + kPrefill});
  ASSERT_EQ(m->engine->last_logits().size(), size_t(V));
  const std::vector<int32_t> out = m->engine->generate(int64_t(gen.size()) - kPrefill, /*ignore_eos=*/true);
  EXPECT_EQ(out, std::vector<int32_t>(gen.begin() + kPrefill, gen.end()));
}

// Every transformers fixture under tests/data (hf_*, each made by make_hf_v4_fixture.py with
// its own shapes and seeds) is checked the same way.
std::vector<std::string> fixtures() {
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(data_dir("")))
    if (e.is_directory() && e.path().filename().string().rfind("hf_", 0) == 0 &&
        std::filesystem::exists(e.path() / "reference.safetensors"))
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity, ::testing::ValuesIn(fixtures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace modelone::test
