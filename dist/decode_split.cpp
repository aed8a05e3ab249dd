// DecodeSplit: see decode_split.h.
#include "dist/decode_split.h"

#include <algorithm>

#include "model/base/check.h"
#include "model/base/even_split.h"
#include "model/blocks/moe.h"
#include "model/kernels/linear.h"

namespace modelone {

void DecodeSplit::shared_expert(const ModelConfig& cfg, const comm::Comm& group, int tail,
                                const ExpertWeights& e, float* h, float* y) {
  MO_CHECK(e.loaded(), "shared expert not loaded on this rank");
  const int P = group.size(), me = group.rank();
  const int64_t D = cfg.hidden_size, I = e.w1.rows();
  group.bcast(h, D, tail);
  // gate / up rows [i0, i0 + ni): [ni] each.
  const EvenSplit is(I, P);
  const int64_t i0 = is.begin(me), ni = is.count(me);
  gate_.resize(size_t(std::max<int64_t>(ni, 1)));
  up_.resize(gate_.size());
  if (ni > 0) {  // I < P leaves some ranks none
    linear(h, 1, D, e.w1, i0, ni, gate_.data(), ni);
    linear(h, 1, D, e.w3, i0, ni, up_.data(), ni);
    swiglu(cfg, gate_.data(), up_.data(), ni);
  }
  group.allgatherv(gate_.data(), ni, &act_);  // [I] on every rank
  MO_CHECK(int64_t(act_.size()) == I, "shared expert activations: ", act_.size(), " of ", I);
  // w2 rows [d0, d0 + nd) over all of act: [nd], gathered at the tail into y[D].
  const EvenSplit ds(D, P);
  const int64_t d0 = ds.begin(me), nd = ds.count(me);
  rows_.resize(size_t(std::max<int64_t>(nd, 1)));
  if (nd > 0) linear(act_.data(), 1, I, e.w2, d0, nd, rows_.data(), nd);
  group.gatherv(rows_.data(), nd, &out_, tail);
  if (me == tail) std::copy(out_.begin(), out_.end(), y);
}

}  // namespace modelone
