// Where Engram's table rows come from: synthetic values (presets) or a checkpoint's tensors
// `model.layers.{l}.engram.embed.weight` [R, head_dim] (F8_E4M3 with `embed.scale` [R, head_dim /
// 32] power-of-two scales as V4.1 ships them, or F32 / BF16 without). A rank reads only the row
// range it owns (dist/engram_store.h), in the row format of model/blocks/engram.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/io/weight_tensor.h"

namespace modelone {

class Checkpoint;

class EngramTables {
 public:
  // Synthetic rows of cfg.engram.table_dtype from cfg.seed.
  static EngramTables synthetic(const ModelConfig& cfg);
  // The checkpoint's tables, checked against the rows the hashes address (rows[k] for table k).
  static EngramTables from_checkpoint(const ModelConfig& cfg, const Checkpoint& ck,
                                      const std::vector<int64_t>& rows);
  // The dtype a checkpoint stores its first table in (for sizing before loading).
  static DType checkpoint_dtype(const ModelConfig& cfg, const Checkpoint& ck);

  DType dtype() const { return dtype_; }
  // Rows [r0, r0 + n) of table k into out[n, engram_row_bytes(dtype, head_dim)].
  void read(int64_t k, int64_t r0, int64_t n, uint8_t* out) const;

 private:
  DType dtype_ = DType::F32;
  int64_t head_dim_ = 0;
  uint64_t seed_ = 0;
  std::vector<Weight> embed_, scale_;  // checkpoint tensors (empty: synthetic)
};

std::string engram_embed_name(int64_t layer);
// The compression map file beside a checkpoint's config.json.
inline const char* kEngramMapFile = "engram_compression_map.npy";
// Reads dir/engram_compression_map.npy and checks it against the config.
std::vector<int32_t> read_compression_map(const std::string& dir, const ModelConfig& cfg);

}  // namespace modelone
