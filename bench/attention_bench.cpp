// Decode cost of one attention layer as the context grows, for each layer kind (sliding, CSA,
// HCA) at V4-Flash dimensions, through the engine's decode path at cp = 1, against dense MQA
// attention over every cached token (the baseline, same kernels, same run). The cache is filled with synthetic rows standing for a
// context of N tokens, so long contexts need no prefill.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "model/io/model_source.h"
#include "dist/cp_attention.h"
#include "dist/grid.h"
#include "model/blocks/attention.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"

namespace modelone::bench {

namespace {

std::vector<float> randn(size_t n, std::mt19937& g) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// The cache a layer would hold after n tokens (n a multiple of the compress rates).
LayerCache filled_cache(const ModelConfig& cfg, int64_t n, DType kv, std::mt19937& g) {
  LayerCache c = make_layer_caches(cfg, kv)[0];
  const int64_t Dh = cfg.head_dim;
  c.restart_at(n);
  auto win = randn(size_t((cfg.sliding_window - 1) * Dh), g);
  c.window.append(win.data(), cfg.sliding_window - 1);
  if (cfg.attn[0] != AttnKind::Sliding) {
    const int64_t m = cfg.compress_rate(0);
    auto e = randn(size_t(n / m * Dh), g);
    c.entries.append(e.data(), n / m, int64_t(0));
    for (CompressorState* st : {&c.comp, &c.idx_comp}) {  // the open windows' raw rows
      if (st->rate == 0) continue;
      st->first = st->lookback_start(n);
      st->n = n - st->first;
      auto r = randn(size_t(st->n * st->proj_width()), g);
      std::copy(r.begin(), r.end(), st->kv.begin());
      std::copy(r.begin(), r.end(), st->gate.begin());
    }
    if (cfg.attn[0] == AttnKind::CSA) {
      auto k = randn(size_t(n / m * cfg.index_head_dim), g);
      c.idx_keys.append(k.data(), n / m, int64_t(0));
    }
  }
  return c;
}

// Dense MQA core: every head attends to all n cached rows of K (= V).
void dense_core(const float* q, const float* K, int64_t n, int64_t H, int64_t Dh, float* o) {
  const int nt = omp_get_max_threads();
  const int64_t hb = (H + nt - 1) / nt;
#pragma omp parallel
  {
    std::vector<float> l;
#pragma omp for schedule(static)
    for (int64_t h0 = 0; h0 < H; h0 += hb) {
      const int64_t nh = std::min(hb, H - h0);
      l.resize(size_t(nh * n));
      sgemm_nt(nh, n, Dh, q + h0 * Dh, Dh, K, Dh, l.data(), n);
      for (int64_t i = 0; i < nh; ++i) softmax(l.data() + i * n, n);
      sgemm_nn(nh, Dh, n, l.data(), n, K, Dh, o + h0 * Dh, Dh);
    }
  }
}

}  // namespace

int attention_bench(const AttentionBenchOptions& o) {
  set_compute_threads(o.threads);
  std::mt19937 g(7);
  // The decode path of the engine at cp = 1, one layer.
  RankGrid grid = RankGrid::make(1, 1);
  for (const std::string kind : {"sliding_attention", "compressed_sparse_attention",
                                  "heavily_compressed_attention"}) {
    std::vector<std::string> sets = o.sets;
    sets.push_back("num_hidden_layers=1");
    sets.push_back("layer_types=" + kind);
    ModelSource ms = resolve_model(o.model, sets);
    const ModelConfig& cfg = ms.cfg;
    // Attention weights only: no expert is loaded.
    ModelWeights w = load_weights(cfg, *ms.weights, [](int64_t, int64_t) { return false; });
    const AttnWeights& aw = w.layers[0].attn;
    const Rope rope(cfg.rope_for(0));
    const int64_t D = cfg.hidden_size, H = cfg.num_heads, Dh = cfg.head_dim;
    auto h = randn(size_t(D), g);
    for (int64_t n : o.contexts) {
      // The whole layer per decode step, and its attention core (keys picked, softmax,
      // weighted sum) from the same calls; with the bf16 cache, then the same rows in fp8.
      std::vector<float> out(static_cast<size_t>(D)), ob(static_cast<size_t>(H * Dh));
      auto time_layer = [&](DType kv, std::mt19937 gc, double* core_s) {
        LayerCache cache = filled_cache(cfg, n, kv, gc);
        CpAttention att(cfg, grid.cp_comm, kv, nullptr);
        att.assume_step(prefill_layout(0, n, 1, CpLayout::Contiguous));
        std::vector<double> core;
        const double layer = median_seconds([&] {
          const double a0 = att.timers().attend;
          att.begin_step(decode_layout(att.position(), 1, 0));
          att.forward(0, aw, rope, h.data(), cache, out.data());
          att.end_step();
          core.push_back(att.timers().attend - a0);
        });
        *core_s = median(core);
        return layer;
      };
      double core_s = 0, core8 = 0;
      const double layer = time_layer(DType::BF16, g, &core_s);
      const double layer8 = time_layer(DType::F8_E4M3, g, &core8);
      g.discard(1);
      std::vector<float> q = randn(size_t(H * Dh), g);
      auto K = randn(size_t((n + 1) * Dh), g);
      const double dense = median_seconds([&] { dense_core(q.data(), K.data(), n + 1, H, Dh, ob.data()); });
      int64_t keys = std::min<int64_t>(cfg.sliding_window, n + 1);
      if (cfg.attn[0] == AttnKind::HCA) keys += (n + 1) / cfg.hca_rate;
      if (cfg.attn[0] == AttnKind::CSA) keys += std::min<int64_t>(cfg.index_topk, (n + 1) / cfg.csa_rate);
      Line("attention_decode")
          .add("kind", kind == "sliding_attention" ? std::string("sliding")
                       : kind == "compressed_sparse_attention" ? std::string("csa") : std::string("hca"))
          .add("context", n)
          .add("keys_attended", keys)
          .add("layer_ms", layer * 1e3)
          .add("core_ms", core_s * 1e3)
          .add("dense_core_ms", dense * 1e3)
          .add("ratio_vs_dense", dense / core_s, 3)
          .add("fp8_cache_layer_ms", layer8 * 1e3)
          .add("fp8_vs_bf16_cache", layer8 / layer, 3)
          .print();
    }
  }
  return 0;
}

}  // namespace modelone::bench
