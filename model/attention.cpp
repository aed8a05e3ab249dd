#include "model/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/check.h"
#include "model/compressor.h"
#include "model/gemm.h"
#include "model/kernels.h"

namespace modelone {

void attn_project(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, const float* h,
                  int64_t T, int64_t pos0, const LayerCache& cache, AttnProj* p) {
  const int64_t D = cfg.hidden_size, H = cfg.num_heads, Dh = cfg.head_dim, R = cfg.q_lora_rank;
  const float eps = float(cfg.rms_norm_eps);
  p->q_lat.resize(size_t(T * R));
  p->q.resize(size_t(T * H * Dh));
  p->kv.resize(size_t(T * Dh));
  linear(h, T, D, w.wq_a, 0, R, p->q_lat.data(), R);
  const std::vector<float> qn = w.q_norm.to_f32(), kn = w.norm.to_f32();
  rms_norm_rows(p->q_lat.data(), T, R, R, eps, qn.data());
  linear(p->q_lat.data(), T, R, w.wq_b, 0, H * Dh, p->q.data(), H * Dh);
  linear(h, T, D, w.wkv, 0, Dh, p->kv.data(), Dh);
#pragma omp parallel for schedule(static) if (T > 1)
  for (int64_t t = 0; t < T; ++t) {
    float* qt = p->q.data() + t * H * Dh;
    for (int64_t hh = 0; hh < H; ++hh) rms_norm(qt + hh * Dh, Dh, eps);  // q_b_norm: unweighted
    rope.apply(qt, H, Dh, pos0 + t);
    float* kt = p->kv.data() + t * Dh;
    rms_norm(kt, Dh, eps, kn.data());
    rope.apply(kt, 1, Dh, pos0 + t);
  }
  // Later queries read these rows back from the cache, so use them as the cache will hold them.
  round_to_dtype(cache.window.dtype(), p->kv.data(), size_t(T * Dh));
}

void attn_keys(const ModelConfig& cfg, int64_t layer, const AttnWeights& w, const Rope& rope,
               const float* h, int64_t T, int64_t pos0, const AttnProj& p, LayerCache& cache,
               AttnKeys* k) {
  const int64_t Dh = cfg.head_dim;
  MO_CHECK(cache.n_tokens == pos0, "layer ", layer, " cache at ", cache.n_tokens, ", chunk at ", pos0);
  // Window source: the ring's rows (the positions just before pos0), then this chunk.
  const int64_t n_prev = cache.window.size();
  k->window.resize(size_t((n_prev + T) * Dh));
  cache.window.read_all(k->window.data());
  std::memcpy(k->window.data() + n_prev * Dh, p.kv.data(), size_t(T * Dh) * 4);
  k->window_first_pos = pos0 - n_prev;
  cache.window.append(p.kv.data(), T);

  const AttnKind kind = cfg.attn[size_t(layer)];
  k->entries = nullptr;
  if (kind != AttnKind::Sliding) {
    const float eps = float(cfg.rms_norm_eps);
    compressor_project_and_feed(cache.comp, w.compressor, rope, eps, h, T, cache.entries);
    k->entries = &cache.entries;
    if (kind == AttnKind::CSA) {
      compressor_project_and_feed(cache.idx_comp, w.idx_compressor, rope, eps, h, T,
                                  cache.idx_keys);
      indexer_queries(cfg, w, rope, p.q_lat.data(), h, T, pos0, &k->iq);
      k->picks.resize(size_t(T * cfg.index_topk));
      k->n_picks.resize(size_t(T));
      indexer_select(cfg, k->iq, T, pos0, cache.idx_keys, k->picks.data(), k->n_picks.data());
    }
  }
  cache.n_tokens += T;
}

void attn_attend(const ModelConfig& cfg, int64_t layer, const AttnWeights& w, const AttnProj& p,
                 const AttnKeys& k, int64_t T, int64_t pos0, float* o) {
  const int64_t H = cfg.num_heads, Dh = cfg.head_dim, Wn = cfg.sliding_window;
  const AttnKind kind = cfg.attn[size_t(layer)];
  const int64_t rate = cfg.compress_rate(layer);
  const float scale = 1.f / std::sqrt(float(Dh));
  const std::vector<float> sink = w.attn_sink.to_f32();
  // Compressed entries visible to the last query, widened once for all queries.
  std::vector<float> ent_tmp;
  const int64_t n_ent = k.entries ? std::min(k.entries->rows(), (pos0 + T) / std::max<int64_t>(rate, 1)) : 0;
  const float* ent = n_ent ? k.entries->view(0, n_ent, ent_tmp) : nullptr;

  // Work items: (query, block of heads). Decode has one query, so it splits heads instead.
  const int nthreads = omp_get_max_threads();
  const int64_t h_blocks = T >= nthreads ? 1 : std::min<int64_t>(H, (nthreads + T - 1) / T);
  const int64_t hb = (H + h_blocks - 1) / h_blocks;
#pragma omp parallel
  {
    std::vector<float> logits, gathered, factor;
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < h_blocks; ++b) {
        const int64_t h0 = b * hb, nh = std::min(hb, H - h0);
        if (nh <= 0) continue;
        const int64_t pos = pos0 + t;
        // Sliding window: positions max(0, pos - Wn + 1) .. pos.
        const int64_t w_lo = std::max<int64_t>(0, pos - Wn + 1) - k.window_first_pos;
        const int64_t nw = pos - k.window_first_pos + 1 - w_lo;
        const float* kw = k.window.data() + w_lo * Dh;
        // Compressed keys: HCA sees every closed window, CSA the indexer's picks.
        const float* kc = nullptr;
        int64_t nc = 0;
        if (kind == AttnKind::HCA) {
          nc = std::min(n_ent, (pos + 1) / rate);
          kc = ent;
        } else if (kind == AttnKind::CSA) {
          nc = k.n_picks[size_t(t)];
          gathered.resize(size_t(nc * Dh));
          const int32_t* pk = k.picks.data() + t * cfg.index_topk;
          for (int64_t i = 0; i < nc; ++i)
            std::memcpy(gathered.data() + i * Dh, ent + int64_t(pk[i]) * Dh, size_t(Dh) * 4);
          kc = gathered.data();
        }
        const int64_t S = nw + nc;
        logits.resize(size_t(nh * S));
        const float* q = p.q.data() + (t * H + h0) * Dh;
        sgemm_nt(nh, nw, Dh, q, Dh, kw, Dh, logits.data(), S);
        sgemm_nt(nh, nc, Dh, q, Dh, kc, Dh, logits.data() + nw, S);
        factor.resize(size_t(nh));
        for (int64_t i = 0; i < nh; ++i) {
          float* l = logits.data() + i * S;
          float mx = -INFINITY;
          for (int64_t s = 0; s < S; ++s) mx = std::max(mx, l[s] *= scale);
          float sum = 0.f;
          for (int64_t s = 0; s < S; ++s) sum += (l[s] = std::exp(l[s] - mx));
          // The sink is one more logit in the softmax whose value is dropped.
          const float total = sum + std::exp(sink[size_t(h0 + i)] - mx);
          factor[size_t(i)] = 1.f / total;
        }
        float* ot = o + (t * H + h0) * Dh;
        sgemm_nn(nh, Dh, nw, logits.data(), S, kw, Dh, ot, Dh);  // V = K; heads of a token are adjacent
        sgemm_nn(nh, Dh, nc, logits.data() + nw, S, kc, Dh, ot, Dh, 1.f);
        for (int64_t i = 0; i < nh; ++i)
          for (int64_t d = 0; d < Dh; ++d) ot[i * Dh + d] *= factor[size_t(i)];
      }
  }
}

void attn_output(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, float* o,
                 int64_t T, int64_t pos0, float* out) {
  const int64_t H = cfg.num_heads, Dh = cfg.head_dim, G = cfg.o_groups, R = cfg.o_lora_rank;
  // V carries RoPE (K = V), so rotate the output back at the query position.
#pragma omp parallel for schedule(static) if (T > 1)
  for (int64_t t = 0; t < T; ++t) rope.apply(o + t * H * Dh, H, Dh, pos0 + t, /*inverse=*/true);
  // Grouped low-rank projection: group g's heads (contiguous) through rows [g*R, (g+1)*R) of wo_a.
  const int64_t gw = H * Dh / G;
  std::vector<float> z(static_cast<size_t>(T * G * R));
  for (int64_t g = 0; g < G; ++g)
    linear(o + g * gw, T, H * Dh, w.wo_a, g * R, R, z.data() + g * R, G * R);
  linear(z.data(), T, G * R, w.wo_b, 0, cfg.hidden_size, out, cfg.hidden_size);
}

void attention_forward(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                       const Rope& rope, const float* h, int64_t T, int64_t pos0,
                       LayerCache& cache, float* out, AttnScratch* s) {
  attn_project(cfg, w, rope, h, T, pos0, cache, &s->p);
  attn_keys(cfg, layer, w, rope, h, T, pos0, s->p, cache, &s->k);
  s->o.resize(size_t(T * cfg.num_heads * cfg.head_dim));
  attn_attend(cfg, layer, w, s->p, s->k, T, pos0, s->o.data());
  attn_output(cfg, w, rope, s->o.data(), T, pos0, out);
}

}  // namespace modelone
