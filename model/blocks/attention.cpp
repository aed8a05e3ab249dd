#include "model/blocks/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/kernels/bf16_decode.h"
#include "model/base/check.h"
#include "model/blocks/attention_v41.h"
#include "model/blocks/compressor.h"
#include "model/kernels/fake_quant.h"
#include "model/kernels/omp_threads.h"
#include "model/kernels/linear.h"
#include "model/kernels/elementwise.h"
#include "model/cache/kv_store.h"

namespace modelone {

void attn_project_keys(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                       const Rope& rope, const float* h, int64_t T, const int64_t* pos,
                       DType cache_dtype, AttnProj* p) {
  const int64_t D = cfg.hidden_size, Dh = cfg.head_dim;
  const float eps = float(cfg.rms_norm_eps);
  p->pos.assign(pos, pos + T);
  p->kv.resize(size_t(T * Dh));
  linear(h, T, D, w.wkv, 0, Dh, p->kv.data(), Dh);
  const std::vector<float> kn = w.norm.to_f32();
  const bool fq = cfg.fake_quant;  // V4.1: the window KV in FP8, RoPE tail included
  parallel_for(T, T * Dh > kSplitRowWork ? threads_here() : 1, [&](int64_t t) {
    float* kt = p->kv.data() + t * Dh;
    rms_norm(kt, Dh, eps, kn.data());
    rope.apply(kt, 1, Dh, pos[t]);
    if (fq) fake_quant_fp8_ue8m0(kt, Dh, kWindowQuantBlock);
  });
  // Later queries read these rows back from the cache, so use them as the cache will hold them.
  KvRowFormat{cache_dtype, Dh, cfg.rope_dim, /*window=*/true}.round_trip(p->kv.data(), T);
  const AttnKind kind = cfg.attn[size_t(layer)];
  if (kind == AttnKind::Sliding) return;
  if (kind == AttnKind::Shared) {  // V4.1: only a kv source compresses (one series, width Dh)
    if (cfg.shared.is_kv_source(layer)) shared_source_project(cfg, layer, w, h, T, p);
    return;
  }
  const int64_t cw = kind == AttnKind::CSA ? 2 * Dh : Dh;
  p->comp_kv.resize(size_t(T * cw));
  p->comp_gate.resize(size_t(T * cw));
  compressor_project(w.compressor, cw, h, T, p->comp_kv.data(), p->comp_gate.data());
  if (kind != AttnKind::CSA) return;
  const int64_t iw = 2 * cfg.index_head_dim;
  p->idx_kv.resize(size_t(T * iw));
  p->idx_gate.resize(size_t(T * iw));
  compressor_project(w.idx_compressor, iw, h, T, p->idx_kv.data(), p->idx_gate.data());
}

void attn_project_latent(const ModelConfig& cfg, int64_t layer, const AttnWeights& w,
                         const Rope& rope, const float* h, int64_t T, AttnProj* p) {
  const int64_t D = cfg.hidden_size, R = cfg.q_lora_rank;
  MO_CHECK(int64_t(p->pos.size()) == T, "project the keys first");
  p->q_lat.resize(size_t(T * R));
  linear(h, T, D, w.wq_a, 0, R, p->q_lat.data(), R);
  const std::vector<float> qn = w.q_norm.to_f32();
  rms_norm_rows(p->q_lat.data(), T, R, R, float(cfg.rms_norm_eps), qn.data());
  if (cfg.attn[size_t(layer)] == AttnKind::CSA || cfg.shared.is_index_source(layer))
    indexer_queries(cfg, w, rope, p->q_lat.data(), h, T, p->pos.data(), &p->iq);
}

void attn_project_heads(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope,
                        const float* q_lat, int64_t T, const int64_t* pos, int64_t h0,
                        int64_t nh, float* q) {
  const int64_t Dh = cfg.head_dim, R = cfg.q_lora_rank;
  const float eps = float(cfg.rms_norm_eps);
  linear(q_lat, T, R, w.wq_b, h0 * Dh, nh * Dh, q, nh * Dh);
  parallel_for(T, T * nh * Dh > kSplitRowWork ? threads_here() : 1, [&](int64_t t) {
    float* qt = q + t * nh * Dh;
    // V4's q_b_norm (unweighted, per head); V4.1 has none.
    if (!cfg.v41())
      for (int64_t hh = 0; hh < nh; ++hh) rms_norm(qt + hh * Dh, Dh, eps);
    rope.apply(qt, nh, Dh, pos[t]);
  });
}

void attn_advance(const ModelConfig& cfg, int64_t layer, const AttnWeights& w, const Rope& rope,
                  const AttnProj& p, const Segment& seg, LayerCache& cache, SegmentWindow* win,
                  EntryStore* entries_out, EntryStore* keys_out) {
  const int64_t Dh = cfg.head_dim, n = seg.n;
  MO_CHECK(cache.n_tokens == seg.pos, "layer ", layer, " cache at ", cache.n_tokens,
           ", segment at ", seg.pos);
  // Window source: the ring's rows (the positions just before seg.pos), then the segment's.
  const int64_t n_prev = cache.window.size();
  win->rows.resize(size_t((n_prev + n) * Dh));
  cache.window.read_all(win->rows.data());
  std::memcpy(win->rows.data() + n_prev * Dh, p.kv.data() + seg.row * Dh, size_t(n * Dh) * 4);
  win->first_pos = seg.pos - n_prev;
  cache.window.append(p.kv.data() + seg.row * Dh, n);

  const AttnKind kind = cfg.attn[size_t(layer)];
  if (kind == AttnKind::Shared) {
    if (cfg.shared.is_kv_source(layer))
      shared_source_feed(cfg, layer, w, rope, p, seg, cache, entries_out ? *entries_out : cache.entries,
                         keys_out ? *keys_out : cache.idx_keys);
  } else if (kind != AttnKind::Sliding) {
    const float eps = float(cfg.rms_norm_eps);
    const int64_t cw = cache.comp.proj_width();
    compressor_feed(cache.comp, w.compressor, rope, eps, p.comp_kv.data() + seg.row * cw,
                    p.comp_gate.data() + seg.row * cw, n, entries_out ? *entries_out : cache.entries);
    if (kind == AttnKind::CSA) {
      const int64_t iw = cache.idx_comp.proj_width();
      compressor_feed(cache.idx_comp, w.idx_compressor, rope, eps, p.idx_kv.data() + seg.row * iw,
                      p.idx_gate.data() + seg.row * iw, n, keys_out ? *keys_out : cache.idx_keys);
    }
  }
  cache.n_tokens += n;
}

void AttnPartials::resize(int64_t T, int64_t H, int64_t Dh) {
  o.resize(size_t(T * H * Dh));
  mx.resize(size_t(T * H));
  sum.resize(size_t(T * H));
}

void attn_partial(const float* q, int64_t nh, int64_t Dh, const float* kw, int64_t nw,
                  const float* kc, int64_t nc, float* o, float* mx, float* sum,
                  std::vector<float>& logits) {
  const float scale = 1.f / std::sqrt(float(Dh));
  const int64_t S = nw + nc;
  logits.resize(size_t(nh * S));
  const bool bf16 = compute_mode() == Compute::BF16;
  // bf16 path: q and the keys (window, then compressed) rounded once, the probabilities rounded
  // before P @ V; sums in fp32. Run on the calling thread (we are inside a parallel loop).
  static thread_local std::vector<uint16_t> qb, kb, pb;
  if (bf16) {
    qb.resize(size_t(nh * Dh));
    kb.resize(size_t(S * Dh));
    rows_to_bf16(q, 1, nh * Dh, nh * Dh, qb.data());
    rows_to_bf16(kw, 1, nw * Dh, nw * Dh, kb.data());
    rows_to_bf16(kc, 1, nc * Dh, nc * Dh, kb.data() + nw * Dh);
    gemm_bf16_nt_here(nh, S, Dh, qb.data(), Dh, kb.data(), Dh, logits.data(), S, false);
  } else {
    sgemm_nt(nh, nw, Dh, q, Dh, kw, Dh, logits.data(), S);
    sgemm_nt(nh, nc, Dh, q, Dh, kc, Dh, logits.data() + nw, S);
  }
  for (int64_t i = 0; i < nh; ++i) {
    float* l = logits.data() + i * S;
    float m = -INFINITY;
    for (int64_t s = 0; s < S; ++s) m = std::max(m, l[s] *= scale);
    float z = 0.f;
    for (int64_t s = 0; s < S; ++s) z += (l[s] = std::exp(l[s] - m));
    mx[i] = m;
    sum[i] = z;
  }
  if (bf16) {
    pb.resize(size_t(nh * S));
    rows_to_bf16(logits.data(), 1, nh * S, nh * S, pb.data());
    gemm_bf16_nn_here(nh, Dh, S, pb.data(), S, kb.data(), Dh, o, Dh, false);  // V = K
    return;
  }
  sgemm_nn(nh, Dh, nw, logits.data(), S, kw, Dh, o, Dh);  // V = K; heads of a query adjacent
  sgemm_nn(nh, Dh, nc, logits.data() + nw, S, kc, Dh, o, Dh, 1.f);
}

void attn_attend(const ModelConfig& cfg, int64_t layer, const AttnProj& p,
                 const std::vector<Segment>& segs, const std::vector<SegmentWindow>& wins,
                 const std::vector<EntryTable>& ents, const int32_t* picks, const int32_t* n_picks,
                 AttnPartials* out) {
  MO_CHECK(ents.size() == 1 || ents.size() == segs.size(), ents.size(), " entry tables for ",
           segs.size(), " segments");
  const int64_t H = cfg.num_heads, Dh = cfg.head_dim, Wn = cfg.sliding_window;
  const int64_t T = int64_t(p.pos.size());
  const AttnKind kind = cfg.attn[size_t(layer)];
  const int64_t rate = cfg.compress_rate(layer);
  out->resize(T, H, Dh);
  if (T == 0) return;
  std::vector<int32_t> seg_of(static_cast<size_t>(T));
  for (size_t s = 0; s < segs.size(); ++s)
    for (int64_t t = segs[s].row; t < segs[s].row + segs[s].n; ++t) seg_of[size_t(t)] = int32_t(s);

  // Work items: (query, block of heads). Decode has one query, so it splits heads instead.
  // Threads by the work (a small model's decode step is too short to split): keys read per head,
  // at most the window and the larger of the picks and the entries (HCA reads them all).
  int64_t keys = cfg.index_topk;
  for (const EntryTable& e : ents) keys = std::max(keys, e.n);
  const int nthreads = threads_for(T * H * Dh * (Wn + keys) * 4);
  const int64_t h_blocks = T >= nthreads ? 1 : std::min<int64_t>(H, (nthreads + T - 1) / T);
  const int64_t hb = (H + h_blocks - 1) / h_blocks;
  parallel_dynamic(T * h_blocks, nthreads, [&](int64_t k) {
    static thread_local std::vector<float> logits, gathered;
    const int64_t t = k / h_blocks, b = k % h_blocks;
    const int64_t h0 = b * hb, nh = std::min(hb, H - h0);
    if (nh <= 0) return;
    const size_t si = size_t(seg_of[size_t(t)]);
    const SegmentWindow& win = wins[si];
    const EntryTable& ent = ents[ents.size() == 1 ? 0 : si];
    const int64_t pos = p.pos[size_t(t)];
    // Sliding window: positions max(0, pos - Wn + 1) .. pos.
    const int64_t w_lo = std::max<int64_t>(0, pos - Wn + 1) - win.first_pos;
    const int64_t nw = pos - win.first_pos + 1 - w_lo;
    const float* kw = win.rows.data() + w_lo * Dh;
    // Compressed keys: HCA sees every closed window, CSA the indexer's picks.
    const float* kc = nullptr;
    int64_t nc = 0;
    if (kind == AttnKind::HCA) {
      nc = std::min(ent.n, (pos + 1) / rate);
      kc = ent.rows;
    } else if (kind == AttnKind::CSA || kind == AttnKind::Shared) {
      nc = n_picks[t];
      gathered.resize(size_t(nc * Dh));
      const int32_t* pk = picks + t * cfg.index_topk;
      for (int64_t i = 0; i < nc; ++i)
        std::memcpy(gathered.data() + i * Dh, ent.rows + int64_t(pk[i]) * Dh, size_t(Dh) * 4);
      kc = gathered.data();
    }
    const size_t at = size_t(t * H + h0);
    attn_partial(p.q.data() + at * size_t(Dh), nh, Dh, kw, nw, kc, nc,
                 out->o.data() + at * size_t(Dh), out->mx.data() + at, out->sum.data() + at,
                 logits);
  });
}

void attn_merge(int64_t T, int64_t H, int64_t Dh, const float* sink,
                const std::vector<const AttnPartials*>& parts, float* o) {
  const size_t P = parts.size();
  parallel_for(T, T * H * Dh * int64_t(P) > kSplitRowWork ? threads_here() : 1, [&](int64_t t) {
    static thread_local std::vector<float> wgt, acc;
    wgt.resize(P), acc.resize(size_t(Dh));
    for (int64_t h = 0; h < H; ++h) {
      const size_t at = size_t(t * H + h);
      float M = -INFINITY;
      for (auto* pp : parts) M = std::max(M, pp->mx[at]);
      float total = 0.f;
      for (size_t i = 0; i < P; ++i) {
        // An empty key set (mx = -inf) weighs nothing.
        wgt[i] = parts[i]->mx[at] == -INFINITY ? 0.f : std::exp(parts[i]->mx[at] - M);
        total += parts[i]->sum[at] * wgt[i];
      }
      // The sink is one more logit in the softmax whose value is dropped.
      const float inv = 1.f / (total + std::exp(sink[h] - M));
      // Part by part over the head's Dh values (a loop the compiler vectorises; per value the
      // same sums in the same order as value by value), then scaled into o (which may alias a
      // part's o: acc holds the sums until every part is read).
      std::fill(acc.begin(), acc.end(), 0.f);
      for (size_t i = 0; i < P; ++i) {
        const float* src = parts[i]->o.data() + at * size_t(Dh);
        const float w = wgt[i];
        for (int64_t d = 0; d < Dh; ++d) acc[size_t(d)] += w * src[d];
      }
      float* oh = o + at * size_t(Dh);
      for (int64_t d = 0; d < Dh; ++d) oh[d] = acc[size_t(d)] * inv;
    }
  });
}

void attn_output_groups(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, float* o,
                        int64_t T, const int64_t* pos, int64_t g0, int64_t g1, float* z) {
  const int64_t H = cfg.num_heads, Dh = cfg.head_dim, G = cfg.o_groups, R = cfg.o_lora_rank;
  const int64_t gw = H * Dh / G, ng = g1 - g0, ld = ng * gw;  // o row: the groups' heads
  // V carries RoPE (K = V), so rotate the output back at the query position.
  parallel_for(T, T * ld > kSplitRowWork ? threads_here() : 1,
               [&](int64_t t) { rope.apply(o + t * ld, ng * H / G, Dh, pos[t], /*inverse=*/true); });
  // Group g's heads (contiguous) through rows [g*R, (g+1)*R) of wo_a.
  for (int64_t g = 0; g < ng; ++g)
    linear(o + g * gw, T, ld, w.wo_a, (g0 + g) * R, R, z + g * R, ng * R);
}

void attn_output_rows(const ModelConfig& cfg, const AttnWeights& w, const float* z, int64_t T,
                      int64_t d0, int64_t nd, float* out, int64_t ldo) {
  const int64_t GR = cfg.o_groups * cfg.o_lora_rank;
  linear(z, T, GR, w.wo_b, d0, nd, out, ldo);
}

void attn_output(const ModelConfig& cfg, const AttnWeights& w, const Rope& rope, float* o,
                 int64_t T, const int64_t* pos, float* out) {
  static thread_local std::vector<float> z;  // kept between layers
  z.resize(static_cast<size_t>(T * cfg.o_groups * cfg.o_lora_rank));
  attn_output_groups(cfg, w, rope, o, T, pos, 0, cfg.o_groups, z.data());
  attn_output_rows(cfg, w, z.data(), T, 0, cfg.hidden_size, out, cfg.hidden_size);
}

}  // namespace modelone
