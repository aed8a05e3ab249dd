// Engram's single-process parts (V4.1, docs/architecture.md, "Engram"): the stored row format, the
// compressed-id map, synthetic tables, and the block that gates the fetched memory into the mHC
// streams. Where rows live and how they travel is dist/engram_store.h; the row indices come from
// model/blocks/engram_hash.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/io/model_weights.h"

namespace modelone {

// One table row as stored and sent: head_dim values of dtype (F32, BF16 or F8_E4M3); an F8_E4M3
// row is followed by head_dim / 32 UE8M0 scales, one power of two per 32 values.
int64_t engram_row_bytes(DType dtype, int64_t head_dim);
void engram_row_to_f32(DType dtype, int64_t head_dim, const uint8_t* row, float* out);

// Rows [r0, r0 + n) of synthetic table `table` (the Engram layer's index), in the row format:
// values depend on (seed, table, global row) only, so any sharding makes the same table.
void synth_engram_rows(uint64_t seed, int64_t table, DType dtype, int64_t head_dim, int64_t r0,
                       int64_t n, uint8_t* out);

// token id -> compressed id. Synthetic presets hash ids onto [0, compressed_vocab); checkpoints
// ship the map as a file (one int per token id).
std::vector<int32_t> synthetic_compression_map(uint64_t seed, int64_t vocab, int64_t compressed_vocab);
// Checks a loaded map: one entry per token id, each in [0, compressed_vocab). `source` names it.
void check_compression_map(const std::vector<int32_t>& map, const ModelConfig& cfg,
                           const std::string& source);

// The gate half of the block, given kv [T, (hc + 1) * D] = wkv e: updates x [T, hc, D].
void engram_gate(const ModelConfig& cfg, const EngramWeights& w, const float* kv, int64_t T,
                 float* x);

// The block, before layer l's attention site, for T positions:
//   kv[t] = wkv e[t]                          e [T, C*hd] -> kv [T, (hc + 1) * D]
//   per stream m: dot = <x_m * q_m * k_m, key_m> / (rms(x_m) rms(key_m) sqrt(D))
//                 g = sigmoid(sign(dot) sqrt(max(|dot|, 1e-6))),   x_m += g * v
// x is [T, hc, D]; kv is scratch.
void engram_forward(const ModelConfig& cfg, const EngramWeights& w, const float* e, int64_t T,
                    float* x, std::vector<float>* kv);

}  // namespace modelone
