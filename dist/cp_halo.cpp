#include "dist/cp_halo.h"

#include <algorithm>
#include <cstring>

#include "model/base/check.h"

namespace modelone {

HaloShape halo_shape(const ModelConfig& cfg, int64_t layer) {
  const int64_t Dh = cfg.head_dim, Di = cfg.index_head_dim;
  switch (cfg.attn[size_t(layer)]) {
    case AttnKind::CSA: return {4 * Dh, cfg.csa_rate, 4 * Di, true};
    case AttnKind::HCA: return {2 * Dh, cfg.hca_rate, 0, false};
    case AttnKind::Shared:  // V4.1: only kv sources compress; their keys come from the entries
      if (cfg.shared.is_kv_source(layer)) return {2 * Dh, cfg.compress_rate(layer), 0, false};
      return {};
    default: return {};
  }
}

void CpHalo::plan(const ModelConfig& cfg, const StepLayout& L,
                  const std::vector<int64_t>& cache_end, int me) {
  L_ = L;
  me_ = me;
  const int cp = int(L.segs.size());
  int prev_tail = -1;  // the rank whose cache state stands at the step's start
  for (int r = 0; r < cp && L.p0 > 0; ++r)
    if (cache_end[size_t(r)] == L.p0) {
      prev_tail = r;
      break;
    }
  MO_CHECK(L.p0 == 0 || prev_tail >= 0, "no cp rank's cache stands at position ", L.p0);
  if (layer_shape_.empty()) {  // the model's shapes, once
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const HaloShape sh = halo_shape(cfg, l);
      auto it = std::find(shapes_.begin(), shapes_.end(), sh);
      layer_shape_.push_back(int(it - shapes_.begin()));
      if (it == shapes_.end()) shapes_.push_back(sh);
    }
    plans_.resize(shapes_.size());
  }
  for (size_t k = 0; k < shapes_.size(); ++k) {
    const HaloShape& sh = shapes_[k];
    KindPlan& P = plans_[k];
    P.send.assign(size_t(cp), {});
    P.recv.assign(size_t(cp), {});
    P.mine.clear();
    const bool comp = sh.comp_width > 0, idx = sh.idx_width > 0;
    P.width[kKv] = cfg.head_dim;
    P.width[kComp] = sh.comp_width;  // kv | gate rows
    P.width[kIdx] = sh.idx_width;
    const int64_t m = std::max<int64_t>(sh.rate, 1);
    auto lookback = [&](int64_t p) {
      return sh.overlap ? std::max<int64_t>(0, (p / m - 1) * m) : p / m * m;
    };
    for (int d = 0; d < cp; ++d) {
      int64_t cur = cache_end[size_t(d)];
      const auto& segs = L.segs[size_t(d)];
      for (size_t i = 0; i < segs.size(); ++i) {
        const Segment& s = segs[i];
        SegNeed need;
        need.pos = s.pos;
        need.restart = s.pos != cur;
        if (need.restart) {
          need.from[kKv] = std::max<int64_t>(0, s.pos - (cfg.sliding_window - 1));
          need.from[kComp] = comp ? lookback(s.pos) : s.pos;
          need.from[kIdx] = idx ? lookback(s.pos) : s.pos;
          for (uint8_t k : {kKv, kComp, kIdx})
            for (int64_t q = need.from[k]; q < s.pos; ++q) {
              const int src = q >= L.p0 ? L.owner(q) : prev_tail;
              const Item it{k, int32_t(i), q};
              if (src == me) P.send[size_t(d)].push_back(it);
              if (d == me) P.recv[size_t(src)].push_back(it);
            }
        }
        if (d == me) P.mine.push_back(need);
        cur = s.pos + s.n;
      }
    }
  }
  sendbuf_.resize(size_t(cp));
  recvbuf_.resize(size_t(cp));
}


void CpHalo::start(const comm::Comm& cp, int64_t layer, const AttnProj& p, const LayerCache& cache,
                   comm::Counters* counters) {
  cur_ = layer_shape_[size_t(layer)];
  const KindPlan& P = kp();
  int64_t bytes = 0;
  std::vector<float> ring;  // the previous tail's window rows, read once
  int64_t ring_first = 0;
  for (size_t d = 0; d < P.send.size(); ++d) {
    const auto& items = P.send[d];
    std::vector<float>& buf = sendbuf_[d];
    size_t n = 0;
    for (const Item& it : items) n += size_t(P.width[it.kind]);
    buf.resize(n);
    float* dst = buf.data();
    for (const Item& it : items) {
      const int64_t w = P.width[it.kind];
      if (it.pos >= L_.p0) {  // a row this rank made in this step
        const int64_t r = L_.row_of(it.pos, me_);
        if (it.kind == kKv) {
          std::memcpy(dst, p.kv.data() + r * w, size_t(w) * 4);
        } else {
          const auto& kv = it.kind == kComp ? p.comp_kv : p.idx_kv;
          const auto& g = it.kind == kComp ? p.comp_gate : p.idx_gate;
          std::memcpy(dst, kv.data() + r * (w / 2), size_t(w / 2) * 4);
          std::memcpy(dst + w / 2, g.data() + r * (w / 2), size_t(w / 2) * 4);
        }
      } else if (it.kind == kKv) {  // before the step: out of this rank's cache state
        if (ring.empty()) {
          ring.resize(size_t(cache.window.size() * w));
          cache.window.read_all(ring.data());
          ring_first = cache.n_tokens - cache.window.size();
        }
        MO_CHECK(it.pos >= ring_first, "window row ", it.pos, " left the ring");
        std::memcpy(dst, ring.data() + (it.pos - ring_first) * w, size_t(w) * 4);
      } else {
        const CompressorState& st = it.kind == kComp ? cache.comp : cache.idx_comp;
        const int64_t pw = st.proj_width(), r = it.pos - st.first;
        MO_CHECK(r >= 0 && r < st.n && pw == w / 2, "compressor row ", it.pos, " not held");
        std::memcpy(dst, st.kv.data() + r * pw, size_t(pw) * 4);
        std::memcpy(dst + pw, st.gate.data() + r * pw, size_t(pw) * 4);
      }
      dst += w;
    }
    if (int(d) != me_) bytes += int64_t(n * 4);
  }
  comm::OpStats& st = comm::stats(counters, "cp.halo");
  const double t0 = comm::now();
  const int tag = int(layer);
  for (size_t s = 0; s < P.recv.size(); ++s) {
    size_t n = 0;
    for (const Item& it : P.recv[s]) n += size_t(P.width[it.kind]);
    if (int(s) == me_) {
      recvbuf_[s] = sendbuf_[s];
      continue;
    }
    recvbuf_[s].resize(n);
    if (n) reqs_.add(cp.irecv(recvbuf_[s].data(), int64_t(n), int(s), tag));
  }
  for (size_t d = 0; d < P.send.size(); ++d)
    if (int(d) != me_ && !sendbuf_[d].empty())
      reqs_.add(cp.isend(sendbuf_[d].data(), int64_t(sendbuf_[d].size()), int(d), tag));
  ++st.calls;
  st.bytes += bytes;
  st.seconds += comm::now() - t0;
}

void CpHalo::finish(comm::Counters* counters) {
  {
    const double t0 = comm::now();
    reqs_.wait_all();
    comm::stats(counters, "cp.halo").seconds += comm::now() - t0;
  }
  const KindPlan& P = kp();
  for (uint8_t k : {kKv, kComp, kIdx}) {
    rows_[k].assign(P.mine.size(), {});
    for (size_t i = 0; i < P.mine.size(); ++i)
      if (P.mine[i].restart)
        rows_[k][i].resize(size_t((P.mine[i].pos - P.mine[i].from[k]) * P.width[k]));
  }
  for (size_t s = 0; s < P.recv.size(); ++s) {
    const float* src = recvbuf_[s].data();
    for (const Item& it : P.recv[s]) {
      const int64_t w = P.width[it.kind];
      const SegNeed& need = P.mine[size_t(it.seg)];
      std::memcpy(rows_[it.kind][size_t(it.seg)].data() + (it.pos - need.from[it.kind]) * w, src,
                  size_t(w) * 4);
      src += w;
    }
  }
}

namespace {
// A compressor state standing at pos, from rows [from, pos) of packed (kv | gate).
void load_state(CompressorState& st, int64_t from, int64_t pos, const float* rows) {
  const int64_t pw = st.proj_width();
  st.first = from;
  st.n = pos - from;
  MO_CHECK(st.first == st.lookback_start(pos) && st.n <= st.capacity());
  for (int64_t r = 0; r < st.n; ++r) {
    std::memcpy(st.kv.data() + r * pw, rows + r * 2 * pw, size_t(pw) * 4);
    std::memcpy(st.gate.data() + r * pw, rows + r * 2 * pw + pw, size_t(pw) * 4);
  }
}
}  // namespace

void CpHalo::restart(int64_t i, LayerCache& cache) const {
  const KindPlan& P = kp();
  const SegNeed& need = P.mine[size_t(i)];
  if (!need.restart) return;
  cache.restart_at(need.pos);
  cache.window.append(rows_[kKv][size_t(i)].data(), need.pos - need.from[kKv]);
  if (P.width[kComp]) load_state(cache.comp, need.from[kComp], need.pos, rows_[kComp][size_t(i)].data());
  if (P.width[kIdx]) load_state(cache.idx_comp, need.from[kIdx], need.pos, rows_[kIdx][size_t(i)].data());
}

}  // namespace modelone
