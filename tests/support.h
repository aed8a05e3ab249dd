// Shared test helpers: the transformers fixture, engines built on a preset or checkpoint, and
// tensor comparisons that say where two tensors differ most.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/io/model_source.h"
#include "dist/engine.h"
#include "dist/grid.h"
#include "model/io/safetensors.h"

namespace modelone::test {

// tests/data/<name> (reference fixtures made outside this project, kept in the repo).
std::string data_dir(const std::string& name);

// reference.safetensors of a fixture directory, or the .safetensors file named.
struct Reference {
  Checkpoint ck;
  std::vector<float> f32(const std::string& name) const;
  std::vector<int32_t> ids(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
};
Reference load_reference(const std::string& fixture);

// An engine over the whole world with the given model (preset, .pbtxt or directory).
struct TestModel {
  ModelSource ms;
  RankGrid grid;
  std::unique_ptr<Engine> engine;
};
// placement: per-layer expert placement (default: contiguous over the ep group).
std::unique_ptr<TestModel> make_model(const std::string& model, EngineOptions opt = {},
                                      const std::vector<std::string>& sets = {}, int cp = 0,
                                      int ep = 0, std::vector<ExpertPlacement> placement = {});

// The same, on this rank alone (cp = ep = 1 over a world of one): the single-rank reference.
std::unique_ptr<TestModel> make_solo_model(const std::string& model, EngineOptions opt = {},
                                           const std::vector<std::string>& sets = {});

// Every tensor of a checkpoint as values to write back (fixture variants).
std::vector<TensorToWrite> checkpoint_tensors(const Checkpoint& ck);

// The error loading the model at dir (resolve, then every weight on this rank), or "".
std::string load_error(const std::string& dir);

// The message of the modelone::Error that f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

// max |a - b| / max |b|: fp32 results of one computation in another summation order. Sizes that
// differ are a test failure (and infinity).
float rel_diff(const std::vector<float>& a, const std::vector<float>& b);

// Largest |a - b| and where it is.
struct Diff {
  float max_abs = 0;
  size_t at = 0;
};
Diff max_diff(const float* a, const float* b, size_t n);

}  // namespace modelone::test
