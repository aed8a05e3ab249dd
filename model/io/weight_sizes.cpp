#include "model/io/weight_sizes.h"

#include <string>

#include "model/io/safetensors.h"
#include "model/io/tensor_table.h"
#include "model/io/model_weights.h"

namespace modelone {

namespace {

bool ends_with(const std::string& s, const char* t) {
  const std::string u = t;
  return s.size() >= u.size() && s.compare(s.size() - u.size(), u.size(), u) == 0;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// The release's storage of one tensor (see scripts/release_checkpoint.py for the same choice).
int64_t release_bytes(const TensorInstance& t, const ModelConfig& cfg) {
  const std::string p = t.spec->pattern;
  const int64_t n = numel(t.shape);
  if (t.spec->integer) return 8 * n;
  if (t.spec->scope == Scope::Expert) return n / 2 + n / 32;  // FP4 + one E8M0 per 32
  for (const char* s : {".attn.wq_a.weight", ".attn.wq_b.weight", ".attn.wkv.weight",
                        ".attn.wo_a.weight", ".attn.wo_b.weight", ".indexer.wq_b.weight",
                        ".shared_experts.w1.weight", ".shared_experts.w2.weight",
                        ".shared_experts.w3.weight", ".engram.wkv.weight"})
    if (ends_with(p, s)) {
      const int64_t br = cfg.fp8_block_rows, bc = cfg.fp8_block_cols;
      return n + ((t.shape[0] + br - 1) / br) * ((t.shape[1] + bc - 1) / bc);
    }
  if (p.find("hc_") != std::string::npos || ends_with(p, "attn_sink") || ends_with(p, ".ape") ||
      ends_with(p, "gate.bias"))
    return 4 * n;
  return 2 * n;
}

template <class F>
WeightBytes sum_bytes(const ModelConfig& cfg, F&& bytes_of) {
  WeightBytes w;
  for (const TensorInstance& t : enumerate_tensors(cfg))
    (t.spec->scope == Scope::Expert ? w.experts : w.shared) += bytes_of(t);
  return w;
}

}  // namespace

int64_t WeightBytes::per_rank(const ModelConfig& cfg, int ep) const {
  const int64_t E = cfg.n_experts;
  return shared + experts / E * ((E + ep - 1) / ep);
}

WeightBytes uniform_weight_bytes(const ModelConfig& cfg, DType dtype) {
  return sum_bytes(cfg, [&](const TensorInstance& t) {
    return t.spec->integer ? 8 * numel(t.shape) : int64_t(dtype_bytes(dtype, size_t(numel(t.shape))));
  });
}

WeightBytes release_weight_bytes(const ModelConfig& cfg) {
  return sum_bytes(cfg, [&](const TensorInstance& t) { return release_bytes(t, cfg); });
}

WeightBytes checkpoint_weight_bytes(const ModelConfig& cfg, const Checkpoint& ck) {
  const NameScheme scheme = name_scheme(ck);
  return sum_bytes(cfg, [&](const TensorInstance& t) {
    const std::string name = scheme_name(scheme, t.name);
    if (!ck.has(name)) return release_bytes(t, cfg);  // loading will name what is missing
    int64_t b = int64_t(ck.get(name).nbytes());
    const std::string base = ends_with(name, ".weight") ? name.substr(0, name.size() - 7) : name;
    for (const std::string& s : {base + ".scale", base + ".weight_scale_inv"})
      if (ck.has(s)) b += int64_t(ck.get(s).nbytes());
    return b;
  });
}

}  // namespace modelone
