#include "model/weights.h"

#include <algorithm>

#include "model/check.h"
#include "model/safetensors.h"
#include "model/synthetic.h"
#include "model/tensor_table.h"

namespace modelone {

namespace {

class CheckpointSource : public WeightSource {
 public:
  explicit CheckpointSource(std::shared_ptr<const Checkpoint> ck) : ck_(std::move(ck)) {}

  Weight load(const WeightRequest& req) override {
    MO_REQUIRE(ck_->has(req.name), "checkpoint '", ck_->path(), "' is missing tensor '", req.name,
               "' (expected shape ", shape_str(req.shape), ")");
    Weight w = ck_->get(req.name);
    MO_REQUIRE(w.shape == req.shape, "tensor '", req.name, "' has shape ", shape_str(w.shape),
               ", expected ", shape_str(req.shape));
    if (req.integer) {
      MO_REQUIRE(w.dtype == DType::I64 || w.dtype == DType::I32, "tensor '", req.name,
                 "' has dtype ", dtype_name(w.dtype), ", expected I64");
      return w;
    }
    MO_REQUIRE(w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 ||
                   w.dtype == DType::F8_E4M3,
               "tensor '", req.name, "' has dtype ", dtype_name(w.dtype),
               ", expected F32, BF16, F16 or F8_E4M3");
    if (w.dtype == DType::F8_E4M3) attach_scale(w);
    return w;
  }

  std::string describe() const override { return "checkpoint " + ck_->path(); }

 private:
  // FP8 weights come with block scales: DeepSeek names them X.scale, transformers
  // X.weight_scale_inv; the block size follows from the two shapes.
  void attach_scale(Weight& w) {
    std::string base = w.name;
    if (base.size() > 7 && base.compare(base.size() - 7, 7, ".weight") == 0)
      base.resize(base.size() - 7);
    std::string sname;
    for (auto cand : {base + ".scale", base + ".weight_scale_inv"})
      if (ck_->has(cand)) sname = cand;
    MO_REQUIRE(!sname.empty(), "FP8 tensor '", w.name, "' has no block scale (", base,
               ".scale or ", base, ".weight_scale_inv)");
    auto s = std::make_shared<Weight>(ck_->get(sname));
    MO_REQUIRE(s->shape.size() == 2 && w.shape.size() == 2 && s->shape[0] > 0 && s->shape[1] > 0,
               "scale '", sname, "' has shape ", shape_str(s->shape), ", expected 2-D");
    w.block_rows = (w.shape[0] + s->shape[0] - 1) / s->shape[0];
    w.block_cols = (w.shape[1] + s->shape[1] - 1) / s->shape[1];
    MO_REQUIRE((w.shape[0] + w.block_rows - 1) / w.block_rows == s->shape[0] &&
                   (w.shape[1] + w.block_cols - 1) / w.block_cols == s->shape[1],
               "scale '", sname, "' shape ", shape_str(s->shape), " does not tile ", w.name, " ",
               shape_str(w.shape));
    w.scale = std::move(s);
  }

  std::shared_ptr<const Checkpoint> ck_;
};

class SyntheticSource : public WeightSource {
 public:
  SyntheticSource(uint64_t seed, DType dtype) : seed_(seed), dtype_(dtype) {}

  Weight load(const WeightRequest& req) override {
    Weight w;
    w.name = req.name;
    w.shape = req.shape;
    const uint64_t h = name_hash(req.name);
    if (req.integer) {
      w.dtype = DType::I64;
      auto buf = std::shared_ptr<int64_t[]>(new int64_t[size_t(w.numel())]);
      const int64_t rows = req.shape[0], k = req.shape[1];
      synth_tid2eid(seed_, h, req.int_range, k, 0, rows, buf.get());
      w.data = buf.get();
      w.owner = std::shared_ptr<const void>(buf, buf.get());
      return w;
    }
    // Small tensors (norms, biases) stay fp32; matrices take the preset's dtype.
    w.dtype = req.shape.size() >= 2 ? dtype_ : DType::F32;
    const int64_t n = w.numel();
    auto buf = std::shared_ptr<char[]>(new char[w.nbytes()]);
    constexpr int64_t kChunk = 1 << 20;
    std::vector<float> tmp(static_cast<size_t>(std::min(n, kChunk)));
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t m = std::min(kChunk, n - i);
      synth_fill(seed_, h, req.init, i, i + m, tmp.data());
      narrow_from_f32(w.dtype, tmp.data(), buf.get() + size_t(i) * dtype_size(w.dtype), size_t(m));
    }
    w.data = buf.get();
    w.owner = std::shared_ptr<const void>(buf, buf.get());
    return w;
  }

  std::string describe() const override { return "synthetic weights, seed " + std::to_string(seed_); }

 private:
  uint64_t seed_;
  DType dtype_;
};

}  // namespace

std::unique_ptr<WeightSource> checkpoint_source(std::shared_ptr<const Checkpoint> ck) {
  return std::make_unique<CheckpointSource>(std::move(ck));
}

std::unique_ptr<WeightSource> synthetic_source(uint64_t seed, DType dtype) {
  return std::make_unique<SyntheticSource>(seed, dtype);
}

ModelWeights load_weights(const ModelConfig& cfg, WeightSource& src, const ExpertFilter& owns,
                          const LoadProgress& progress, const SpecFilter& want) {
  ModelWeights w;
  w.layers.resize(size_t(cfg.num_layers));
  for (auto& l : w.layers) l.experts.resize(size_t(cfg.n_experts));
  auto load_one = [&](const TensorSpec& spec, int64_t l, int64_t e) {
    if (want && !want(spec)) return;
    WeightRequest req{expand_name(spec.pattern, l, e), spec.shape(cfg, std::max<int64_t>(l, 0)),
                      spec.init, spec.integer, spec.integer ? cfg.n_experts : 0};
    Weight* slot = spec.slot(w, l, e);
    *slot = src.load(req);
    w.bytes += slot->nbytes();
  };
  for (auto& spec : tensor_table())
    if (spec.scope == Scope::Global && spec.present(cfg, 0)) load_one(spec, 0, 0);
  // Layer by layer, so progress can be reported as it goes.
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    for (auto& spec : tensor_table()) {
      if (spec.scope == Scope::Global || !spec.present(cfg, l)) continue;
      if (spec.scope == Scope::Layer) {
        load_one(spec, l, 0);
        continue;
      }
      for (int64_t e = 0; e < cfg.n_experts; ++e)
        if (owns(l, e)) load_one(spec, l, e);
    }
    if (progress) progress(l + 1, cfg.num_layers);
  }
  if (cfg.tie_word_embeddings) w.head = w.embed;
  // Hash routing tables must name real experts: a bad id would index out of range later.
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const Weight& t = w.layers[size_t(l)].tid2eid;
    if (t.empty()) continue;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const int64_t id = t.at_i64(i);
      MO_REQUIRE(id >= 0 && id < cfg.n_experts, "tensor '", t.name, "' names expert ", id,
                 " (row ", i / cfg.top_k, "), outside [0, ", cfg.n_experts, ")");
    }
  }
  return w;
}

}  // namespace modelone
