// Cached decode must reproduce prefill: logits at position t from one-token steps equal the
// prefill logits at t, for every layer kind, chunking and cache dtype.
#include <gtest/gtest.h>

#include "tests/support.h"

namespace modelone::test {
namespace {

struct Case {
  std::string name;
  std::vector<std::string> sets;
  DType kv = DType::F32;
  float tol = 1e-4f;
};

class DecodeConsistency : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeConsistency, StepwiseEqualsPrefill) {
  const Case& c = GetParam();
  EngineOptions opt;
  opt.kv_dtype = c.kv;
  auto full = make_model("tiny", opt, c.sets);
  auto step = make_model("tiny", opt, c.sets);
  const int64_t T = 75, V = full->ms.cfg.vocab_size;  // several HCA windows, not a multiple
  std::vector<int32_t> ids(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t((t * 7919 + 13) % V);
  PrefillOptions all;
  all.all_logits = true;
  const std::vector<float> ref = full->engine->prefill(ids, all);
  // Prefill a prefix in uneven chunks, then single steps.
  const int64_t P = 21;
  step->engine->prefill({ids.begin(), ids.begin() + 5});
  step->engine->prefill({ids.begin() + 5, ids.begin() + P});
  for (int64_t t = P; t < T; ++t) {
    step->engine->decode(&ids[size_t(t)]);
    const std::vector<float>& got = step->engine->last_logits();
    const Diff d = max_diff(got.data(), ref.data() + t * V, size_t(V));
    EXPECT_LE(d.max_abs, c.tol) << c.name << ": position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Presets, DecodeConsistency,
    ::testing::Values(
        Case{"tiny", {}},
        // bf16 storage rounds K/V: an fp32 summation-order difference of 1e-7 between the
        // prefill and decode kernels can flip a rounding (1 bf16 ulp = 2^-8 relative), so this
        // case is held to bf16 noise, not fp32 noise.
        Case{"tiny_bf16_cache", {}, DType::BF16, 1e-3f},
        Case{"all_csa_topk_small", {"layer_types=compressed_sparse_attention,compressed_sparse_attention", "num_hidden_layers=2", "index_topk=2", "sliding_window=4"}},
        Case{"all_hca_fp32_weights", {"layer_types=heavily_compressed_attention,heavily_compressed_attention,sliding_attention", "num_hidden_layers=3", "weight_dtype=F32", "compress_rate_hca=8"}},
        Case{"wide_heads", {"num_attention_heads=8", "o_groups=4", "hc_mult=2", "num_experts_per_tok=3", "seed=99"}}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace modelone::test
