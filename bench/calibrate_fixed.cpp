// `bench calibrate`: the engine's fixed costs (norms, hyper-connections, small products, the
// calls themselves: what plan's priced operations leave out) fitted on two anchor models.
//
// A wide layer's decode step reads hundreds of MB of weights: the step minus its priced
// operations is a small difference of two large numbers timed minutes apart, and calibrations of
// one build here gave the wide anchor 0.03 to 9.5 ms a layer of it while the engine's own timers
// left 0.1 ms a layer outside attention, MoE and head (and the timed parts within 5% of their
// prices, either side). So the wide anchor's decode remainder is its untimed time (same step,
// same moment) plus the narrow anchor's timed remainder a layer (its calls' overhead, which
// does not grow with the width: the same calls). Its prefill likewise: the whole step's remainder
// read the kernels' noise as fixed cost (a calibration priced the wide anchor's 256-row prefill
// 1305 ms against 1295 measured, so no per-row cost, while the engine's timers left 63 us a row
// and layer of V4-Flash's 8192-token prefill outside them: the hyper-connections, the norms).
#include <algorithm>
#include <cmath>

#include "bench/calibrate.h"
#include "model/base/check.h"

namespace modelone::bench {

namespace {

// A width term through the anchors (w0, c0) and (w1, c1), w0 < w1, never below zero: the line
// when its value at width 0 is not negative, else c * w^p through both (at0 = 0; p at most 4,
// a narrow anchor with no cost left counting as 1 ns).
void fit_width(double w0, double c0, double w1, double c1, double* at0, double* c, double* p) {
  *p = 1;
  *c = std::max(0.0, (c1 - c0) / (w1 - w0));
  *at0 = c0 - *c * w0;
  if (*at0 >= 0) return;
  *at0 = 0;
  c0 = std::max(c0, 1e-9);
  *p = std::min(4.0, std::log(c1 / c0) / std::log(w1 / w0));
  *c = c1 / std::pow(w1, *p);
}

}  // namespace

// Per anchor i (0 narrow, 1 wide), per layer: decode remainder rd_i (1 row), prefill remainder
// rp_i (R_i rows); then rd = a + b, rp = a + b R_i, a the per-layer and b the per-row cost, each a
// width term through the two anchors.
EngineFixed fit_engine_fixed(const std::array<AnchorFit, 2>& an, FixedFitOut* out, EngineFixed f) {
  const AnchorFit &n = an[0], &w = an[1];
  const double rd_n = (n.measured.decode - n.priced_decode) / n.layers;
  const double timed_rest = rd_n - n.measured.decode_untimed / n.layers;  // the calls' overhead
  // The wide anchor's remainders: its untimed time and the narrow anchor's calls, a layer.
  const double calls = std::max(0.0, timed_rest);
  const double rd[2] = {rd_n, w.measured.decode_untimed / w.layers + calls};
  const double rp[2] = {(n.measured.prefill - n.priced_prefill) / n.layers,
                        w.measured.prefill_untimed / w.layers + calls};
  double a[2], b[2];
  for (int i = 0; i < 2; ++i) {
    const AnchorFit& x = an[size_t(i)];
    MO_CHECK(x.rows > 1, "an anchor's prefill needs rows beyond its decode's one");
    b[i] = std::max(0.0, (rp[i] - rd[i]) / (x.rows - 1));
    a[i] = std::max(0.0, rd[i] - b[i]);
    if (out) out->per_layer_s[size_t(i)] = a[i], out->per_row_s[size_t(i)] = b[i];
  }
  fit_width(n.width, a[0], w.width, a[1], &f.per_layer_s, &f.per_layer_width_s, &f.per_layer_power);
  fit_width(n.width, b[0], w.width, b[1], &f.per_row_s, &f.per_row_width_s, &f.per_row_power);
  return f;
}

void fit_part_scales(const AnchorStep& m, const StepCost& decode, const StepCost& prefill, EngineFixed* f) {
  const auto scale = [](double measured, double priced) {
    return measured > 0 && priced > 0 ? std::clamp(measured / priced, 0.5, 2.0) : 1.0;
  };
  const auto attn = [](const StepCost& s) {
    return s.parts.at("attention").compute + s.parts.at("indexer").compute;
  };
  const auto moe = [](const StepCost& s) { return s.parts.at("moe_experts").compute + s.parts.at("moe_experts").wait; };
  f->attention_decode = scale(m.decode_attention, attn(decode));
  f->moe_decode = scale(m.decode_moe, moe(decode));
  f->attention_prefill = scale(m.prefill_attention, attn(prefill));
  f->moe_prefill = scale(m.prefill_moe, moe(prefill));
}

}  // namespace modelone::bench
