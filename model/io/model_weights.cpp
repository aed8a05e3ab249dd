#include "model/io/model_weights.h"

#include <algorithm>

#include "model/base/check.h"
#include "model/base/large_alloc.h"
#include "model/io/safetensors.h"
#include "model/io/synthetic.h"
#include "model/io/tensor_table.h"

namespace modelone {

namespace {

class CheckpointSource : public WeightSource {
 public:
  CheckpointSource(std::shared_ptr<const Checkpoint> ck, int64_t block_rows, int64_t block_cols)
      : ck_(std::move(ck)), scheme_(name_scheme(*ck_)), br_(block_rows), bc_(block_cols) {}

  Weight load(const WeightRequest& req) override {
    const std::string name = scheme_name(scheme_, req.name);
    MO_REQUIRE(ck_->has(name), "checkpoint '", ck_->path(), "' is missing tensor '", name,
               "' (expected shape ", shape_str(req.shape), ")");
    Weight w = ck_->get(name);
    if (w.dtype == DType::I8 || w.dtype == DType::U8) return fp4(std::move(w), req);
    MO_REQUIRE(w.shape == req.shape, "checkpoint '", ck_->path(), "': tensor '", name,
               "' has shape ", shape_str(w.shape), " but the config (config.json and any --set) "
               "gives ", shape_str(req.shape));
    if (req.integer) {
      MO_REQUIRE(w.dtype == DType::I64 || w.dtype == DType::I32, "tensor '", name,
                 "' has dtype ", dtype_name(w.dtype), ", expected I64");
      return w;
    }
    MO_REQUIRE(w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 ||
                   w.dtype == DType::F8_E4M3,
               "tensor '", name, "' has dtype ", dtype_name(w.dtype),
               ", expected F32, BF16, F16 or F8_E4M3");
    if (w.dtype == DType::F8_E4M3) attach_scale(w, br_, bc_, "weight_block_size");
    return w;
  }

  std::string describe() const override { return "checkpoint " + ck_->path(); }

 private:
  // Routed experts ship FP4: I8 [out, in / 2], two e2m1 codes a byte, with an E8M0 scale per 32
  // inputs of a row. Kept packed; rows_f32 decodes a tile at a time.
  Weight fp4(Weight w, const WeightRequest& req) {
    MO_REQUIRE(req.expert && req.shape.size() == 2, "tensor '", w.name, "' is ",
               dtype_name(w.dtype), ": packed FP4 is read only for routed expert weights");
    const int64_t out = req.shape[0], in = req.shape[1];
    MO_REQUIRE(in % 32 == 0 && w.shape == std::vector<int64_t>({out, in / 2}), "FP4 tensor '",
               w.name, "' has shape ", shape_str(w.shape), ", expected [", out, ", ", in / 2,
               "] (two codes a byte of a ", shape_str(req.shape), " weight)");
    w.dtype = DType::F4_E2M1;
    w.shape = req.shape;
    attach_scale(w, 1, 32, "FP4's per-32 group");
    MO_REQUIRE(w.scale->dtype == DType::F8_E8M0 || w.scale->dtype == DType::F32, "scale of FP4 '",
               w.name, "' is ", dtype_name(w.scale->dtype), ", expected F8_E8M0");
    return w;
  }

  // Block scales: DeepSeek names them X.scale, transformers X.weight_scale_inv. The block is the
  // config's (rows x cols); the scale must have the shape that block tiles the weight into.
  void attach_scale(Weight& w, int64_t br, int64_t bc, const char* what) {
    std::string base = w.name;
    if (base.size() > 7 && base.compare(base.size() - 7, 7, ".weight") == 0)
      base.resize(base.size() - 7);
    std::string sname;
    for (auto cand : {base + ".scale", base + ".weight_scale_inv"})
      if (ck_->has(cand)) sname = cand;
    MO_REQUIRE(!sname.empty(), "quantized tensor '", w.name, "' has no scale (", base,
               ".scale or ", base, ".weight_scale_inv)");
    auto s = std::make_shared<Weight>(ck_->get(sname));
    // A scale of integers (U8, I8, ...) would be read as numbers silently.
    MO_REQUIRE(s->dtype == DType::F32 || s->dtype == DType::BF16 || s->dtype == DType::F8_E8M0,
               "scale '", sname, "' has dtype ", dtype_name(s->dtype),
               ", expected F32, BF16 or F8_E8M0");
    const std::vector<int64_t> want = {(w.rows() + br - 1) / br, (w.cols() + bc - 1) / bc};
    MO_REQUIRE(w.shape.size() == 2 && s->shape == want, "scale '", sname, "' has shape ",
               shape_str(s->shape), ", but ", what, " [", br, ", ", bc, "] tiles '", w.name, "' ",
               shape_str(w.shape), " into ", shape_str(want));
    w.block_rows = br;
    w.block_cols = bc;
    w.scale = std::move(s);
  }

  std::shared_ptr<const Checkpoint> ck_;
  NameScheme scheme_;
  int64_t br_, bc_;
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
    const std::shared_ptr<char> buf = alloc_large(size_t(w.nbytes()), req.name.c_str());
    constexpr int64_t kChunk = 1 << 20;
    std::vector<float> tmp(static_cast<size_t>(std::min(n, kChunk)));
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t m = std::min(kChunk, n - i);
      synth_fill(seed_, h, req.init, i, i + m, tmp.data());
      // Narrowed by all threads: this loop first touches the weight's pages, and a V4-Flash cut
      // is gigabytes of them.
      constexpr int64_t kPiece = 1 << 14;
      char* dst = buf.get() + size_t(i) * dtype_size(w.dtype);
#pragma omp parallel for schedule(static) if (m > kPiece)
      for (int64_t j = 0; j < m; j += kPiece)
        narrow_from_f32(w.dtype, tmp.data() + j, dst + size_t(j) * dtype_size(w.dtype),
                        size_t(std::min(kPiece, m - j)));
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

NameScheme name_scheme(const Checkpoint& ck) {
  std::string tf, rel;  // one name of each scheme, if any
  for (const std::string& n : ck.names()) {
    if (n.rfind("mtp.", 0) == 0 || n == "head.weight") continue;  // MTP is skipped; head is shared
    if (n.rfind("model.", 0) == 0) tf = n;
    else if (n.rfind("layers.", 0) == 0 || n == "embed.weight" || n == "norm.weight" ||
             n.rfind("hc_head_", 0) == 0)
      rel = n;
  }
  MO_REQUIRE(tf.empty() || rel.empty(), "checkpoint '", ck.path(), "' mixes transformers names ('",
             tf, "') and DeepSeek release names ('", rel, "')");
  return rel.empty() ? NameScheme::Transformers : NameScheme::Release;
}

void check_checkpoint_arch(const ModelConfig& cfg, const Checkpoint& ck) {
  if (!cfg.v41()) return;
  for (const std::string& n : ck.names()) {
    if (n.rfind("mtp.", 0) == 0) continue;  // DSpark's draft layers are skipped
    const bool v4 = n.find("hc_head") != std::string::npos ||
                    n.find(".compressor.ape") != std::string::npos ||
                    n.find(".indexer.compressor.") != std::string::npos;
    MO_REQUIRE(!v4, "checkpoint '", ck.path(), "' holds '", n, "', a DeepSeek-V4 tensor that "
               "V4.1 does not have, but its config says deepseek_v41 (is model_type right?)");
  }
}

std::string scheme_name(NameScheme s, const std::string& table_name) {
  return s == NameScheme::Release ? release_name(table_name) : table_name;
}

std::unique_ptr<WeightSource> checkpoint_source(std::shared_ptr<const Checkpoint> ck,
                                                int64_t block_rows, int64_t block_cols) {
  return std::make_unique<CheckpointSource>(std::move(ck), block_rows, block_cols);
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
                      spec.init, spec.integer, spec.integer ? cfg.n_experts : 0,
                      spec.scope == Scope::Expert};
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
    const int64_t k = cfg.top_k;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const int64_t id = t.at_i64(i);
      MO_REQUIRE(id >= 0 && id < cfg.n_experts, "tensor '", t.name, "' names expert ", id,
                 " (row ", i / k, "), outside [0, ", cfg.n_experts, ")");
      // A token's k experts are distinct: a repeat would count one expert twice.
      for (int64_t j = i - i % k; j < i; ++j)
        MO_REQUIRE(t.at_i64(j) != id, "tensor '", t.name, "' row ", i / k, " names expert ", id,
                   " twice");
    }
  }
  return w;
}

}  // namespace modelone
