// The FP8 KV cache layout of FlashMLA's MODEL1 (DeepSeek-V4), one entry per row:
//   [0, nope)                  e4m3 NoPE values (nope = head_dim - rope_dim; 448 in V4)
//   [nope, nope + 2 rope)      bf16 RoPE values (the trailing rope_dim dims; 64 in V4)
//   then ceil(nope / 64)       UE8M0 scales, one power of two per 64 NoPE values
//   zero padding to a multiple of 8 bytes: 448 + 128 + 7 + 1 = 584 bytes in V4 (1024 in bf16).
// The indexer's keys: dim e4m3 values, then one fp32 power-of-two scale per 128 values
// (132 bytes for V4's 128-dim keys).
// The caches store rows this way with --kv-cache fp8 (model/cache/kv_store.h); a row is decoded only
// when attention reads it (the selected top-k for CSA).
#pragma once
#include <cstdint>

namespace modelone {

int64_t fp8_entry_bytes(int64_t head_dim, int64_t rope_dim);
// x [head_dim] (NoPE first, RoPE last) -> out [fp8_entry_bytes]; scale = 2^ceil(log2(amax / 448)).
void fp8_entry_encode(const float* x, int64_t head_dim, int64_t rope_dim, uint8_t* out);
void fp8_entry_decode(const uint8_t* in, int64_t head_dim, int64_t rope_dim, float* x);

int64_t fp8_key_bytes(int64_t dim);
void fp8_key_encode(const float* x, int64_t dim, uint8_t* out);
void fp8_key_decode(const uint8_t* in, int64_t dim, float* x);

}  // namespace modelone
