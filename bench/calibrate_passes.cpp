// `bench calibrate`: whole passes of the kernels reduced to one profile, point by point (see
// calibrate.h). A point is already a median of runs a fraction of a second apart; on a shared
// machine a burst of load lasting seconds moves every run of it (once the 2-thread cached
// product read 1.3-4.2 GFLOPS at 64-512 rows instead of 390-740, and the plan was 6x too slow),
// but not the same point of passes minutes apart.
#include <algorithm>
#include <cstdio>
#include <functional>

#include "bench/bench_util.h"
#include "bench/calibrate.h"
#include "model/base/check.h"

namespace modelone::bench {

namespace {

template <class T>
double median_of(const std::vector<const T*>& xs, const std::function<double(const T&)>& get) {
  std::vector<double> v;
  for (const T* x : xs) v.push_back(get(*x));
  return median(v);
}

CostCurve curve_median(const std::vector<const CostCurve*>& cs) {
  CostCurve out = *cs.front();
  for (const CostCurve* c : cs)
    MO_REQUIRE(c->size == out.size, "calibrate: passes timed different points");
  for (size_t i = 0; i < out.per_unit.size(); ++i)
    out.per_unit[i] = median_of<CostCurve>(cs, [&](const CostCurve& c) { return c.per_unit[i]; });
  return out;
}

ProductCosts costs_median(const std::vector<const ProductCosts*>& ps) {
  ProductCosts out = *ps.front();
  for (size_t k = 0; k < out.classes.size(); ++k) {
    std::vector<const CostCurve*> cs;
    for (const ProductCosts* p : ps) cs.push_back(&p->classes.at(k).curve);
    out.classes[k].curve = curve_median(cs);
  }
  out.call_s = median_of<ProductCosts>(ps, [](const ProductCosts& p) { return p.call_s; });
  return out;
}

AttnCurves attn_median(const std::vector<const AttnCurves*>& as) {
  AttnCurves out;
  for (auto m : {&AttnCurves::partial, &AttnCurves::index, &AttnCurves::partial_key, &AttnCurves::index_key}) {
    std::vector<const CostCurve*> cs;
    for (const AttnCurves* a : as) cs.push_back(&(a->*m));
    out.*m = curve_median(cs);
  }
  return out;
}

// Per key of a map in every pass, the median of `one` over the passes.
template <class K, class V, class F>
void each_key(const std::vector<MachineProfile>& passes, std::map<K, V> MachineProfile::*field,
              MachineProfile* out, F one) {
  for (auto& [k, v] : passes.front().*field) {
    std::vector<const V*> xs;
    for (const MachineProfile& p : passes) xs.push_back(&(p.*field).at(k));
    (out->*field)[k] = one(xs);
  }
}

}  // namespace

void keep_medians(const std::vector<MachineProfile>& passes, MachineProfile* out) {
  MO_REQUIRE(!passes.empty(), "calibrate: no pass to reduce");
  each_key(passes, &MachineProfile::products, out, costs_median);
  each_key(passes, &MachineProfile::experts, out, costs_median);
  each_key(passes, &MachineProfile::attention, out, [](const std::vector<const AttnCosts*>& as) {
    std::vector<const AttnCurves*> many, one;
    for (const AttnCosts* a : as) many.push_back(&a->many), one.push_back(&a->one);
    return AttnCosts{attn_median(many), attn_median(one)};
  });
  each_key(passes, &MachineProfile::read_gbps, out, [](const std::vector<const double*>& xs) {
    return median_of<double>(xs, [](const double& x) { return x; });
  });
}

AnchorTimes median_anchors(const std::vector<AnchorTimes>& passes) {
  AnchorTimes out{};
  for (size_t i = 0; i < out.size(); ++i) {
    const auto each = [&](double AnchorStep::*field) {
      std::vector<double> v;
      for (const AnchorTimes& a : passes) v.push_back(a[i].*field);
      return median(v);
    };
    out[i] = {each(&AnchorStep::prefill), each(&AnchorStep::decode), each(&AnchorStep::decode_untimed),
              each(&AnchorStep::prefill_untimed), each(&AnchorStep::decode_attention),
              each(&AnchorStep::decode_moe), each(&AnchorStep::prefill_attention), each(&AnchorStep::prefill_moe)};
  }
  return out;
}

Together median_together(const std::vector<Together>& passes) {
  MO_REQUIRE(!passes.empty(), "calibrate: no pass timed the ranks together");
  Together out = passes.front();
  std::vector<const CostCurve*> cs;
  for (const Together& t : passes) {
    MO_REQUIRE(t.ranks == out.ranks, "calibrate: passes timed different ranks together");
    cs.push_back(&t.slowdown);
  }
  if (!out.slowdown.size.empty()) out.slowdown = curve_median(cs);
  return out;
}

// Passes (and their anchors' steps) between two readings of uneven cores are set aside where
// others ran on even ones: a busy neighbour slowed one core of this VM to 0.65 of the other for
// minutes, and every 2-thread product waits on it. A warning where every pass ran so.
void keep_even_passes(const std::vector<bool>& even, std::vector<MachineProfile>* done,
                      std::map<int, std::vector<AnchorTimes>>* anchors) {
  const size_t n = size_t(std::count(even.begin(), even.end(), true));
  if (n == 0) {
    std::fprintf(stderr, "calibrate: warning: the node's cores ran unevenly through every pass (the "
                 "slowest under %.2f of the fastest: a busy neighbour?): steps over every core wait on the "
                 "slowest, slower than plan will say; calibrate again when the node is quiet\n",
                 MachineProfile::kEvenCorePace);
    return;
  }
  if (n == even.size()) return;
  std::fprintf(stderr, "calibrate: %zu of %zu passes ran on uneven cores: their points are set aside\n",
               even.size() - n, even.size());
  auto keep = [&](auto& v) {  // v[k] for the even k, in order
    size_t out = 0;
    for (size_t k = 0; k < even.size(); ++k)
      if (even[k]) v[out++] = v[k];
    v.resize(out);
  };
  keep(*done);
  for (auto& [t, v] : *anchors) keep(v);
}

}  // namespace modelone::bench
