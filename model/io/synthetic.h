// Synthetic weights: every value is a pure function of (seed, tensor name, element index), so a
// rank makes exactly the slice it owns and every rank agrees on every value.
#pragma once
#include <cstdint>
#include <string>

#include "model/io/tensor_table.h"

namespace modelone {

uint64_t name_hash(const std::string& name);
// Uniform values with the init's mean and standard deviation for elements [begin, end).
void synth_fill(uint64_t seed, uint64_t name_h, const Init& init, int64_t begin, int64_t end,
                float* out);
// tid2eid rows [row_begin, row_end): k distinct experts of n_experts per row.
void synth_tid2eid(uint64_t seed, uint64_t name_h, int64_t n_experts, int64_t k, int64_t row_begin,
                   int64_t row_end, int64_t* out);

}  // namespace modelone
