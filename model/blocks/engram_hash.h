// Engram's hashed n-gram row indices as DeepSeek-V4.1 computes them: per Engram layer, odd
// multipliers drawn from numpy's default_rng and one prime-sized table slice per (order, head)
// column. Row indices depend on compressed token ids alone, so a step's lookups can be issued
// before the first layer runs (docs/architecture.md, "Engram").
#pragma once
#include <cstdint>
#include <vector>

namespace modelone {

// One Engram layer's hash parameters. Columns are ordered n = 2 heads 0..n_heads-1, then n = 3,
// and so on, the order the reference concatenates the looked-up rows in.
struct EngramHashParams {
  std::vector<int64_t> multipliers;  // [max_ngram], odd, s = 0 is the token itself
  std::vector<int64_t> primes;       // [C], C = (max_ngram - 1) * n_heads; j = (n-2)*n_heads + head
  std::vector<int64_t> offsets;      // [C], exclusive prefix sum of primes (row offset of column j)
  int64_t rows = 0;                  // sum of primes: the table's row count
};

// numpy.random.default_rng(seed).integers(0, high, n) with dtype int64, bit for bit (numpy >= 1.17
// Generator: PCG64 seeded through SeedSequence, Lemire's bounded method). Only ranges above 2^32
// are supported (numpy takes a 32-bit path below that); high - 1 must exceed 2^32 - 1.
std::vector<int64_t> numpy_default_rng_integers(uint64_t seed, int64_t high, int64_t n);

// Hash parameters for every Engram layer, in the order of layer_ids.
// Multipliers: default_rng(10007 * layer_id).integers(0, B, max_ngram) * 2 + 1 with
// B = ((2^63 - 1) / compressed_vocab) / 2, so that id * multiplier < 2^63 for every id below
// compressed_vocab. Primes: one increasing search shared by all layers: layer_ids[0] takes the C
// smallest primes >= prime_start, the next layer the next C, column j taking them in order.
std::vector<EngramHashParams> engram_hash_params(const std::vector<int64_t>& layer_ids,
                                                 int64_t max_ngram, int64_t n_heads,
                                                 int64_t prime_start, int64_t compressed_vocab);

// Row indices for positions [p0, p0 + n) of one sequence. hist holds the compressed ids of
// positions 0 .. p0 + n - 1 (at least; each in [0, compressed_vocab)); c_pad is the compressed pad
// id standing in for positions before the sequence start. rows is [n, C] row-major, each value in
// [0, hp.rows).
void engram_rows(const EngramHashParams& hp, int64_t n_heads, const int32_t* hist, int64_t p0,
                 int64_t n, int64_t c_pad, int64_t* rows);

// Deterministic primality test for any 64-bit value (Miller-Rabin with a base set that is exact
// below 2^64). Exposed for tests and for presets that pick their own primes.
bool is_prime_u64(uint64_t n);

}  // namespace modelone
