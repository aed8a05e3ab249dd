#include "tests/support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "comm/comm.h"
#include "dist/engine_setup.h"

#include <cmath>

#include "model/base/check.h"

namespace modelone::test {

std::string data_dir(const std::string& name) { return std::string(MODELONE_TEST_DATA) + "/" + name; }

Reference load_reference(const std::string& fixture) {
  const std::string ext = ".safetensors";
  const bool file = fixture.size() > ext.size() && fixture.compare(fixture.size() - ext.size(), ext.size(), ext) == 0;
  return Reference{Checkpoint::open(file ? fixture : fixture + "/reference.safetensors")};
}

std::vector<float> Reference::f32(const std::string& name) const { return ck.get(name).to_f32(); }

std::vector<int32_t> Reference::ids(const std::string& name) const {
  Weight w = ck.get(name);
  std::vector<int32_t> out(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < w.numel(); ++i) out[size_t(i)] = int32_t(w.at_i64(i));
  return out;
}

std::vector<int64_t> Reference::shape(const std::string& name) const { return ck.get(name).shape; }

std::unique_ptr<TestModel> make_model(const std::string& model, EngineOptions opt,
                                      const std::vector<std::string>& sets, int cp, int ep,
                                      std::vector<ExpertPlacement> placement) {
  auto tm = std::make_unique<TestModel>();
  tm->ms = resolve_model(model, sets);
  tm->grid = RankGrid::make(cp, ep);
  tm->engine = make_engine(tm->ms, tm->grid, opt, std::move(placement));
  return tm;
}

std::unique_ptr<TestModel> make_solo_model(const std::string& model, EngineOptions opt,
                                           const std::vector<std::string>& sets) {
  auto tm = std::make_unique<TestModel>();
  tm->ms = resolve_model(model, sets);
  const comm::Comm world = comm::Comm::world();
  tm->grid = RankGrid::make_on(world.split(world.rank(), 0), 1, 1);
  tm->engine = make_engine(tm->ms, tm->grid, opt);
  return tm;
}

std::vector<TensorToWrite> checkpoint_tensors(const Checkpoint& ck) {
  std::vector<TensorToWrite> all;
  for (auto& n : ck.names()) {
    Weight w = ck.get(n);
    TensorToWrite t{n, w.dtype, w.shape, {}, {}};
    if (w.dtype == DType::I64)
      for (int64_t i = 0; i < w.numel(); ++i) t.ints.push_back(w.at_i64(i));
    else
      t.values = w.to_f32();
    all.push_back(std::move(t));
  }
  return all;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const comm::AgreedError& e) {  // a collective step's error (make_engine agrees on them)
    return e.what();
  }
  return "";
}

Diff max_diff(const float* a, const float* b, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    const float e = std::fabs(a[i] - b[i]);
    if (!(e <= d.max_abs)) {  // NaN counts as the worst
      d.max_abs = std::isnan(e) ? INFINITY : e;
      d.at = i;
    }
  }
  return d;
}

float rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return INFINITY;
  float scale = 0;
  for (float v : b) scale = std::max(scale, std::fabs(v));
  return max_diff(a.data(), b.data(), b.size()).max_abs / std::max(scale, 1e-30f);
}

std::string load_error(const std::string& dir) {
  return error_of([&] {
    auto ms = resolve_model(dir, {});
    load_weights(ms.cfg, *ms.weights, [](int64_t, int64_t) { return true; });
  });
}

}  // namespace modelone::test
