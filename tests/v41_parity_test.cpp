// Parity with DeepSeek's own V4.1 inference code on the tiny V4.1 fixture (tests/data/v41_tiny,
// made by make_v41_fixture/gen.py running the release's inference/model.py in fp32): with the
// fake quantization off (reference_noqat), every prompt position's logits and the streams entering
// every layer within 1e-3, the stepwise decode within 1e-3, the 32 greedy tokens equal, also with
// prefill chunks that end inside ratio-2 groups. With it on (reference), top-1 agreement on at
// least 90% of positions: FP4 rounding jumps under fp32 round-off (the reference's own prefill
// and decode differ by up to 0.5 logits there); the fp4 cache gives the fp32 cache's logits exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "tests/support.h"

namespace modelone::test {
namespace {

constexpr float kTol = 1e-3f;
const std::vector<std::string> kExact = {"fake_quant=false"};

class V41Parity : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = data_dir("v41_tiny");
    ref_ = std::make_unique<Reference>(load_reference(dir_ + "/reference_noqat.safetensors"));
    ids_ = ref_->ids("input_ids");
    P_ = ref_->ids("prefill_len").at(0);
  }
  std::vector<float> prefill_all(Engine& e, const std::vector<int32_t>& ids) {
    PrefillOptions all;
    all.all_logits = true;
    return e.prefill(ids, all);
  }
  std::string dir_;
  std::unique_ptr<Reference> ref_;
  std::vector<int32_t> ids_;
  int64_t P_ = 0;
};

TEST_F(V41Parity, PrefillLogitsAndHiddenStates) {
  EngineOptions opt;
  opt.capture_hidden = true;
  auto m = make_model(dir_, opt, kExact);
  ASSERT_TRUE(m->ms.cfg.v41());
  const std::vector<float> logits = prefill_all(*m->engine, ids_);
  // The streams entering each layer first, so a failure names the first layer that drifts.
  const Reference dbg = load_reference(dir_ + "/reference_noqat_debug.safetensors");
  const auto& hid = m->engine->hidden();
  const int64_t L = m->ms.cfg.num_layers, row = m->ms.cfg.hc_mult * m->ms.cfg.hidden_size;
  ASSERT_EQ(int64_t(hid.size()), L + 2);  // embedding, after each layer, the final normed state
  for (int64_t i = 0; i <= L; ++i) {  // hidden_L: the final normed state [T, D]
    const auto ref = dbg.f32("hidden_" + std::to_string(i));
    const std::vector<float>& mine = i < L ? hid[size_t(i)] : hid.back();
    ASSERT_EQ(ref.size(), mine.size()) << "hidden_" << i;
    const Diff d = max_diff(mine.data(), ref.data(), ref.size());
    ASSERT_LE(d.max_abs, kTol) << "streams entering layer " << i << " drift first at token "
                               << d.at / size_t(i < L ? row : m->ms.cfg.hidden_size);
  }
  const auto ref = ref_->f32("logits");
  const int64_t T = int64_t(ids_.size()), V = m->ms.cfg.vocab_size;
  ASSERT_EQ(logits.size(), size_t(T * V));
  std::printf("[   info   ] prefill logits max |diff| vs DeepSeek's V4.1 reference: %.3g\n",
              max_diff(logits.data(), ref.data(), ref.size()).max_abs);
  for (int64_t t = 0; t < T; ++t)
    EXPECT_LE(max_diff(logits.data() + t * V, ref.data() + t * V, size_t(V)).max_abs, kTol)
        << "prefill logits at position " << t;
}

TEST_F(V41Parity, StepwiseDecode) {
  auto m = make_model(dir_, {}, kExact);
  const int64_t T = int64_t(ids_.size()), V = m->ms.cfg.vocab_size;
  const auto ref = ref_->f32("stepwise_logits");  // [T - P, V]
  m->engine->prefill({ids_.begin(), ids_.begin() + P_});
  float worst = 0;
  for (int64_t t = P_; t < T; ++t) {
    m->engine->decode(&ids_[size_t(t)]);
    const Diff d = max_diff(m->engine->last_logits().data(), ref.data() + (t - P_) * V, size_t(V));
    EXPECT_LE(d.max_abs, kTol) << "decode logits at position " << t;
    worst = std::max(worst, d.max_abs);
  }
  std::printf("[   info   ] stepwise decode logits max |diff|: %.3g\n", worst);
}

TEST_F(V41Parity, GreedyGeneration) {
  auto m = make_model(dir_, {}, kExact);
  const auto gen = ref_->ids("generated");  // prompt (P) + 32 greedy tokens
  m->engine->prefill({ids_.begin(), ids_.begin() + P_});
  const std::vector<int32_t> out = m->engine->generate(int64_t(gen.size()) - P_, /*ignore_eos=*/true);
  EXPECT_EQ(out, std::vector<int32_t>(gen.begin() + P_, gen.end()));
}

// Chunks of 5 and 7 tokens end inside ratio-2 groups (and candidate blocks): the compressor's
// open group and the window carry across steps.
TEST_F(V41Parity, ChunkedPrefillAcrossGroups) {
  const auto ref = ref_->f32("logits");
  for (int64_t chunk : {5, 7}) {
    EngineOptions opt;
    opt.prefill_chunk = chunk;
    auto m = make_model(dir_, opt, kExact);
    const std::vector<float> logits = prefill_all(*m->engine, ids_);
    ASSERT_EQ(logits.size(), ref.size());
    EXPECT_LE(max_diff(logits.data(), ref.data(), ref.size()).max_abs, kTol) << "chunk " << chunk;
  }
}

// The release's numerics: top-1 agreement with the reference run with its fake quantization.
TEST_F(V41Parity, FakeQuantTop1Agreement) {
  const Reference qat = load_reference(dir_ + "/reference.safetensors");
  auto m = make_model(dir_);
  ASSERT_TRUE(m->ms.cfg.fake_quant);
  const std::vector<float> logits = prefill_all(*m->engine, ids_);
  const auto ref = qat.f32("logits");
  const int64_t T = int64_t(ids_.size()), V = m->ms.cfg.vocab_size;
  ASSERT_EQ(logits.size(), ref.size());
  int64_t agree = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* a = logits.data() + t * V;
    const float* b = ref.data() + t * V;
    agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  std::printf("[   info   ] fake quantization on: top-1 agreement %ld of %ld positions\n", long(agree),
              long(T));
  EXPECT_GE(agree * 10, T * 9);
  // Switching it off moves the logits (it is part of the forward, not a storage detail).
  auto off = make_model(dir_, {}, kExact);
  const std::vector<float> exact = prefill_all(*off->engine, ids_);
  EXPECT_GT(max_diff(logits.data(), exact.data(), exact.size()).max_abs, 1e-2f);
  // The fp4 cache holds exactly what the fake quantization leaves: the same logits, prefill and
  // stepwise decode.
  EngineOptions fp4;
  fp4.kv_dtype = DType::F4_E2M1;
  auto m4 = make_model(dir_, fp4);
  EXPECT_EQ(max_diff(prefill_all(*m4->engine, ids_).data(), logits.data(), logits.size()).max_abs, 0.f);
  m->engine->reset();
  m4->engine->reset();
  m->engine->prefill({ids_.begin(), ids_.begin() + P_});
  m4->engine->prefill({ids_.begin(), ids_.begin() + P_});
  for (int64_t t = P_; t < T; ++t) {
    m->engine->decode(&ids_[size_t(t)]);
    m4->engine->decode(&ids_[size_t(t)]);
    ASSERT_EQ(m4->engine->last_logits(), m->engine->last_logits()) << "decode at position " << t;
  }
  EXPECT_LT(m4->engine->cache_bytes() * 3, m->engine->cache_bytes()) << "fp4 rows are a fraction of fp32's";
}

}  // namespace
}  // namespace modelone::test
