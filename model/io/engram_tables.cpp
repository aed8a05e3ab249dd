#include "model/io/engram_tables.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "model/base/check.h"
#include "model/blocks/engram.h"
#include "model/io/npy.h"
#include "model/io/safetensors.h"
#include "model/io/model_weights.h"

namespace modelone {

std::string engram_embed_name(int64_t layer) {
  return "model.layers." + std::to_string(layer) + ".engram.embed.weight";
}

EngramTables EngramTables::synthetic(const ModelConfig& cfg) {
  EngramTables t;
  t.dtype_ = cfg.engram.table_dtype;
  t.head_dim_ = cfg.engram.head_dim;
  t.seed_ = cfg.seed;
  return t;
}

DType EngramTables::checkpoint_dtype(const ModelConfig& cfg, const Checkpoint& ck) {
  const std::string name = scheme_name(name_scheme(ck), engram_embed_name(cfg.engram.layers.at(0)));
  MO_REQUIRE(ck.has(name), ck.path(), ": missing Engram table '", name, "'");
  return ck.get(name).dtype;
}

EngramTables EngramTables::from_checkpoint(const ModelConfig& cfg, const Checkpoint& ck,
                                           const std::vector<int64_t>& rows) {
  EngramTables t;
  t.head_dim_ = cfg.engram.head_dim;
  t.dtype_ = checkpoint_dtype(cfg, ck);
  MO_REQUIRE(t.dtype_ == DType::F8_E4M3 || t.dtype_ == DType::F32 || t.dtype_ == DType::BF16,
             ck.path(), ": Engram tables must be F8_E4M3, F32 or BF16, not ", dtype_name(t.dtype_));
  const int64_t hd = t.head_dim_;
  const NameScheme scheme = name_scheme(ck);
  for (size_t k = 0; k < cfg.engram.layers.size(); ++k) {
    const std::string name = scheme_name(scheme, engram_embed_name(cfg.engram.layers[k]));
    MO_REQUIRE(ck.has(name), ck.path(), ": missing Engram table '", name, "'");
    Weight w = ck.get(name);
    MO_REQUIRE(w.dtype == t.dtype_, ck.path(), ": '", name, "' is ", dtype_name(w.dtype),
               " but the first Engram table is ", dtype_name(t.dtype_));
    MO_REQUIRE(w.shape == std::vector<int64_t>({rows[k], hd}), ck.path(), ": '", name,
               "' has shape ", shape_str(w.shape), ", expected [", rows[k], ", ", hd,
               "] (rows from the config's primes, engram_head_dim)");
    t.embed_.push_back(w);
    if (t.dtype_ != DType::F8_E4M3) continue;
    MO_REQUIRE(hd % 32 == 0, ck.path(), ": fp8 Engram rows need engram_head_dim a multiple of 32");
    const std::string sname = name.substr(0, name.size() - 6) + "scale";  // "...embed.scale"
    MO_REQUIRE(ck.has(sname), ck.path(), ": missing '", sname, "' (the scales of fp8 '", name, "')");
    Weight s = ck.get(sname);
    MO_REQUIRE(s.dtype == DType::F8_E8M0 || s.dtype == DType::F32, ck.path(), ": '", sname,
               "' must be F8_E8M0 or F32, not ", dtype_name(s.dtype));
    MO_REQUIRE(s.shape == std::vector<int64_t>({rows[k], hd / 32}), ck.path(), ": '", sname,
               "' has shape ", shape_str(s.shape), ", expected [", rows[k], ", ", hd / 32, "]");
    t.scale_.push_back(s);
  }
  return t;
}

void EngramTables::read(int64_t k, int64_t r0, int64_t n, uint8_t* out) const {
  const int64_t hd = head_dim_, rb = engram_row_bytes(dtype_, hd);
  if (embed_.empty()) {
    synth_engram_rows(seed_, k, dtype_, hd, r0, n, out);
    return;
  }
  const Weight& e = embed_[size_t(k)];
  const int64_t vb = hd * int64_t(dtype_size(dtype_));  // value bytes of a row
  const auto* src = static_cast<const uint8_t*>(e.data) + r0 * vb;
  if (dtype_ != DType::F8_E4M3) {
    std::memcpy(out, src, size_t(n * vb));
    return;
  }
  const Weight& s = scale_[size_t(k)];
  const int64_t nb = hd / 32;
  for (int64_t r = 0; r < n; ++r) {
    std::memcpy(out + r * rb, src + r * hd, size_t(hd));
    uint8_t* sc = out + r * rb + hd;
    // Each rank reads only its rows: a damaged scale is found by its owner alone (the store
    // agrees on errors after reading).
    if (s.dtype == DType::F8_E8M0) {
      std::memcpy(sc, static_cast<const uint8_t*>(s.data) + (r0 + r) * nb, size_t(nb));
      for (int64_t b = 0; b < nb; ++b)
        MO_REQUIRE(sc[b] != 0xff, "'", s.name, "' row ", r0 + r, " holds the E8M0 scale 0xff (NaN)");
    } else {  // F32 powers of two (as base checkpoints store block scales)
      for (int64_t b = 0; b < nb; ++b) {
        const float v = s.at_f32((r0 + r) * nb + b);
        MO_REQUIRE(std::isfinite(v) && v > 0.f, "'", s.name, "' row ", r0 + r, " holds the scale ",
                   v, ", not a positive number");
        sc[b] = f32_to_ue8m0_ceil(v);
      }
    }
  }
}

std::vector<int32_t> read_compression_map(const std::string& dir, const ModelConfig& cfg) {
  const std::string path = (std::filesystem::path(dir) / kEngramMapFile).string();
  MO_REQUIRE(std::filesystem::exists(path), dir, ": Engram needs ", kEngramMapFile,
             " (one compressed id per token id; scripts/engram_compression_map.py writes it "
             "from tokenizer.json), or run with --engram off");
  const std::vector<int64_t> v = read_npy_ints(path);
  std::vector<int32_t> map(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    MO_REQUIRE(v[i] >= 0 && v[i] < cfg.engram.compressed_vocab, path, ": token ", i, " maps to ",
               v[i], ", outside the compressed vocabulary [0, ", cfg.engram.compressed_vocab, ")");
    map[i] = int32_t(v[i]);
  }
  check_compression_map(map, cfg, path);
  return map;
}

}  // namespace modelone
