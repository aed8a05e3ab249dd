#include "dist/options.h"

#include "model/base/check.h"

namespace modelone {

template <class T>
std::vector<std::string> Choices<T>::texts() const {
  std::vector<std::string> t;
  for (const auto& r : rows) t.push_back(r.first);
  return t;
}

template <class T>
T Choices<T>::parse(const std::string& text) const {
  std::string all;
  for (const auto& r : rows) {
    if (r.first == text) return r.second;
    all += (all.empty() ? "" : ", ") + r.first;
  }
  fail(flag, ": '", text, "' is not one of ", all);
}

template <class T>
const std::string& Choices<T>::text_of(T value) const {
  for (const auto& r : rows)
    if (r.second == value) return r.first;
  fail("internal: ", flag, " has no text for value ", int(value));
}

template struct Choices<KvCacheChoice>;
template struct Choices<ComputeChoice>;
template struct Choices<Payload>;
template struct Choices<Transport>;
template struct Choices<CpLayout>;
template struct Choices<Repack>;

Compute resolve_compute(ComputeChoice c) {
  return c == ComputeChoice::Auto ? default_compute()
         : c == ComputeChoice::BF16 ? Compute::BF16 : Compute::F32;
}

const Choices<KvCacheChoice>& kv_cache_choices() {
  static const Choices<KvCacheChoice> t{"--kv-cache", {{"auto", KvCacheChoice::Auto},
      {"fp32", KvCacheChoice::F32}, {"bf16", KvCacheChoice::BF16}, {"fp8", KvCacheChoice::FP8},
      {"fp4", KvCacheChoice::FP4}}};
  return t;
}

const Choices<ComputeChoice>& compute_choices() {
  static const Choices<ComputeChoice> t{"--compute", {{"auto", ComputeChoice::Auto},
      {"fp32", ComputeChoice::F32}, {"bf16", ComputeChoice::BF16}}};
  return t;
}

const Choices<Payload>& dispatch_choices() {
  static const Choices<Payload> t{"--dispatch", {{"fp32", Payload::F32}, {"bf16", Payload::BF16},
      {"fp8", Payload::FP8}}};
  return t;
}

// fp8 combine is not offered: the experts' weighted sums lose too much (see moe_payload.h).
const Choices<Payload>& combine_choices() {
  static const Choices<Payload> t{"--combine", {{"fp32", Payload::F32}, {"bf16", Payload::BF16}}};
  return t;
}

const Choices<Transport>& transport_choices() {
  static const Choices<Transport> t{"--ep-transport", {{"auto", Transport::Auto},
      {"mpi", Transport::Mpi}, {"shm", Transport::Shm}}};
  return t;
}

const Choices<CpLayout>& layout_choices() {
  static const Choices<CpLayout> t{"--cp-layout", {{"zigzag", CpLayout::Zigzag},
      {"contiguous", CpLayout::Contiguous}}};
  return t;
}

const Choices<Repack>& repack_choices() {
  static const Choices<Repack> t{"--repack", {{"all", Repack::All}, {"experts", Repack::Experts},
      {"none", Repack::None}}};
  return t;
}

// The names the runtime prints, from the same tables.
const char* payload_name(Payload p) { return dispatch_choices().text_of(p).c_str(); }
const char* cp_layout_name(CpLayout l) { return layout_choices().text_of(l).c_str(); }

}  // namespace modelone
