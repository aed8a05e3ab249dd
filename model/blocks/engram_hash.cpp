#include "model/blocks/engram_hash.h"

#include <array>
#include <limits>

#include "model/base/check.h"

namespace modelone {

namespace {

// ---- numpy SeedSequence (numpy/random/bit_generator.pyx) --------------------------------------
// All of SeedSequence works on uint32 words with wrap-around arithmetic, so uint32_t is exact.
constexpr uint32_t kInitA = 0x43b0d7e5u;
constexpr uint32_t kMultA = 0x931e8875u;
constexpr uint32_t kInitB = 0x8b51f9ddu;
constexpr uint32_t kMultB = 0x58f38dedu;
constexpr uint32_t kMixMultL = 0xca01f9ddu;
constexpr uint32_t kMixMultR = 0x4973f715u;
constexpr int kXShift = 16;
constexpr int kPoolSize = 4;

// Hashes one word with the running multiplier hc, which advances on every call: the order of
// calls is part of the result.
uint32_t hashmix(uint32_t value, uint32_t& hc) {
  value ^= hc;
  hc *= kMultA;
  value *= hc;
  value ^= value >> kXShift;
  return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t r = kMixMultL * x - kMixMultR * y;
  r ^= r >> kXShift;
  return r;
}

// SeedSequence(seed).generate_state(4, uint64): the 256 bits PCG64 is seeded from.
std::array<uint64_t, 4> seed_sequence_state(uint64_t seed) {
  // An int seed becomes its little-endian uint32 words; 0 still yields one word.
  std::vector<uint32_t> entropy{uint32_t(seed)};
  if (seed >> 32) entropy.push_back(uint32_t(seed >> 32));

  std::array<uint32_t, kPoolSize> pool{};
  uint32_t hc = kInitA;
  for (int i = 0; i < kPoolSize; ++i)
    pool[size_t(i)] = hashmix(size_t(i) < entropy.size() ? entropy[size_t(i)] : 0u, hc);
  // Every pool word is stirred into every other one, then any entropy beyond the pool size.
  for (int src = 0; src < kPoolSize; ++src)
    for (int dst = 0; dst < kPoolSize; ++dst)
      if (src != dst) pool[size_t(dst)] = mix(pool[size_t(dst)], hashmix(pool[size_t(src)], hc));
  for (size_t src = kPoolSize; src < entropy.size(); ++src)
    for (int dst = 0; dst < kPoolSize; ++dst)
      pool[size_t(dst)] = mix(pool[size_t(dst)], hashmix(entropy[src], hc));

  // generate_state draws uint32 words and views pairs of them as little-endian uint64.
  std::array<uint32_t, 8> words{};
  uint32_t hb = kInitB;
  for (size_t i = 0; i < words.size(); ++i) {
    uint32_t v = pool[i % kPoolSize];
    v ^= hb;
    hb *= kMultB;
    v *= hb;
    v ^= v >> kXShift;
    words[i] = v;
  }
  std::array<uint64_t, 4> out{};
  for (size_t k = 0; k < out.size(); ++k)
    out[k] = uint64_t(words[2 * k]) | (uint64_t(words[2 * k + 1]) << 32);
  return out;
}

// ---- PCG64 (XSL-RR 128/64), numpy's default bit generator -------------------------------------
using u128 = unsigned __int128;

class Pcg64 {
 public:
  // numpy seeds PCG64 with initstate = words 0:1 and initseq = words 2:3, high word first, then
  // runs pcg's srandom: state = 0, step, add initstate, step.
  explicit Pcg64(const std::array<uint64_t, 4>& s) {
    const u128 initstate = (u128(s[0]) << 64) | s[1];
    const u128 initseq = (u128(s[2]) << 64) | s[3];
    inc_ = (initseq << 1) | 1u;
    state_ = 0;
    step();
    state_ += initstate;
    step();
  }

  // Advance first, then output from the new state.
  uint64_t next_u64() {
    step();
    const uint64_t hi = uint64_t(state_ >> 64), lo = uint64_t(state_);
    const unsigned rot = unsigned(hi >> 58);
    const uint64_t x = hi ^ lo;
    return (x >> rot) | (x << ((64u - rot) & 63u));
  }

 private:
  void step() {
    static const u128 kMult = (u128(0x2360ED051FC65DA4ull) << 64) | 0x4385DF649FCCF645ull;
    state_ = state_ * kMult + inc_;
  }
  u128 state_ = 0, inc_ = 0;
};

// A value in [0, rng] for rng > 2^32 - 1 (numpy's bounded_lemire_uint64): multiply-high of a
// uniform 64-bit draw by the range size, rejecting the few low products that would bias it.
uint64_t bounded_lemire_u64(Pcg64& g, uint64_t rng) {
  const uint64_t rng_excl = rng + 1;  // rng < 2^63 here, so no wrap
  u128 m = u128(g.next_u64()) * rng_excl;
  uint64_t leftover = uint64_t(m);
  if (leftover < rng_excl) {
    const uint64_t threshold = (std::numeric_limits<uint64_t>::max() - rng) % rng_excl;
    while (leftover < threshold) {
      m = u128(g.next_u64()) * rng_excl;
      leftover = uint64_t(m);
    }
  }
  return uint64_t(m >> 64);
}

// ---- primes ------------------------------------------------------------------------------------
uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m) { return uint64_t(u128(a) * b % m); }

uint64_t powmod(uint64_t b, uint64_t e, uint64_t m) {
  uint64_t r = 1 % m;
  b %= m;
  for (; e; e >>= 1) {
    if (e & 1) r = mulmod(r, b, m);
    b = mulmod(b, b, m);
  }
  return r;
}

// Bounds the prime search for absurd prime_start; the row sum is checked for overflow separately.
constexpr int64_t kMaxPrime = int64_t(1) << 56;

}  // namespace

bool is_prime_u64(uint64_t n) {
  // These 12 bases decide every n < 3.3e24 exactly, which covers all of uint64.
  static const uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  if (n < 2) return false;
  for (uint64_t p : kBases) {
    if (n == p) return true;
    if (n % p == 0) return false;
  }
  uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  for (uint64_t a : kBases) {
    uint64_t x = powmod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int i = 1; i < s && composite; ++i) {
      x = mulmod(x, x, n);
      if (x == n - 1) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

std::vector<int64_t> numpy_default_rng_integers(uint64_t seed, int64_t high, int64_t n) {
  MO_REQUIRE(n >= 0, "numpy_default_rng_integers: negative count ", n);
  // numpy draws ranges that fit 32 bits from buffered 32-bit halves instead; not reproduced here.
  MO_REQUIRE(high > (int64_t(1) << 32), "numpy_default_rng_integers: high must exceed 2^32 ",
             "(the 32-bit path of numpy is not implemented), got ", high);
  Pcg64 g(seed_sequence_state(seed));
  const uint64_t rng = uint64_t(high - 1);  // integers(0, high) draws from [0, high - 1]
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (auto& v : out) v = int64_t(bounded_lemire_u64(g, rng));
  return out;
}

std::vector<EngramHashParams> engram_hash_params(const std::vector<int64_t>& layer_ids,
                                                 int64_t max_ngram, int64_t n_heads,
                                                 int64_t prime_start, int64_t compressed_vocab) {
  MO_REQUIRE(compressed_vocab > 0, "engram: compressed vocab size must be positive, got ",
             compressed_vocab);
  MO_REQUIRE(max_ngram >= 2, "engram: max n-gram size must be at least 2, got ", max_ngram);
  MO_REQUIRE(n_heads >= 1, "engram: hash heads per n-gram order must be at least 1, got ",
             n_heads);
  MO_REQUIRE(prime_start >= 2, "engram: prime search start (engram vocab size) must be >= 2, got ",
             prime_start);
  MO_REQUIRE(max_ngram <= 64 && n_heads <= 4096, "engram: max n-gram size ", max_ngram,
             " or heads ", n_heads, " out of range");
  // B keeps id * multiplier below 2^63 for ids below compressed_vocab: the largest multiplier is
  // 2 * (B - 1) + 1 < (2^63 - 1) / compressed_vocab.
  const int64_t bound = (std::numeric_limits<int64_t>::max() / compressed_vocab) / 2;
  MO_REQUIRE(bound > (int64_t(1) << 32), "engram: compressed vocab size ", compressed_vocab,
             " too large for the multiplier draw (needs 64-bit numpy ranges)");

  const int64_t cols = (max_ngram - 1) * n_heads;
  std::vector<EngramHashParams> out;
  out.reserve(layer_ids.size());
  int64_t candidate = prime_start;  // one search shared by all layers: no prime is reused
  for (int64_t layer : layer_ids) {
    MO_REQUIRE(layer >= 0, "engram: negative layer id ", layer);
    EngramHashParams hp;
    hp.multipliers = numpy_default_rng_integers(uint64_t(10007) * uint64_t(layer), bound,
                                                max_ngram);
    for (auto& m : hp.multipliers) m = m * 2 + 1;  // odd: keeps the low bits of the id alive
    hp.primes.reserve(size_t(cols));
    hp.offsets.reserve(size_t(cols));
    for (int64_t j = 0; j < cols; ++j) {
      while (!is_prime_u64(uint64_t(candidate))) {
        ++candidate;
        MO_REQUIRE(candidate < kMaxPrime, "engram: prime search from ", prime_start,
                   " ran out of range");
      }
      hp.offsets.push_back(hp.rows);
      hp.primes.push_back(candidate);
      MO_REQUIRE(!__builtin_add_overflow(hp.rows, candidate, &hp.rows),
                 "engram: table row count overflows int64 (prime start ", prime_start, ")");
      ++candidate;
    }
    out.push_back(std::move(hp));
  }
  return out;
}

void engram_rows(const EngramHashParams& hp, int64_t n_heads, const int32_t* hist, int64_t p0,
                 int64_t n, int64_t c_pad, int64_t* rows) {
  const int64_t max_ngram = int64_t(hp.multipliers.size());
  MO_REQUIRE(max_ngram >= 2 && n_heads >= 1, "engram_rows: need >= 2 multipliers and >= 1 head, ",
             "got ", max_ngram, " and ", n_heads);
  const int64_t cols = (max_ngram - 1) * n_heads;
  MO_REQUIRE(int64_t(hp.primes.size()) == cols && int64_t(hp.offsets.size()) == cols,
             "engram_rows: expected ", cols, " primes and offsets, got ", hp.primes.size(), " and ",
             hp.offsets.size());
  for (int64_t j = 0; j < cols; ++j)
    MO_REQUIRE(hp.primes[size_t(j)] > 0 && hp.offsets[size_t(j)] >= 0 &&
                   hp.offsets[size_t(j)] + hp.primes[size_t(j)] <= hp.rows,
               "engram_rows: column ", j, " (prime ", hp.primes[size_t(j)], ", offset ",
               hp.offsets[size_t(j)], ") does not fit ", hp.rows, " rows");
  MO_REQUIRE(p0 >= 0 && n >= 0, "engram_rows: bad position range p0=", p0, " n=", n);
  MO_REQUIRE(c_pad >= 0, "engram_rows: negative pad id ", c_pad);
  MO_REQUIRE(n == 0 || (hist && rows), "engram_rows: null history or output");

  // uint64 arithmetic: the reference's int64 products stay below 2^63 for ids below the
  // compressed vocab, so the two agree; for larger ids uint64 wraps where int64 would be UB.
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = p0 + i;
    int64_t* out = rows + i * cols;  // [C] for position t
    uint64_t r = 0;
    for (int64_t s = 0; s < max_ngram; ++s) {
      // t < s grows monotonically in s, so "blocked once, blocked after" is just t < s.
      int64_t v = c_pad;
      if (t >= s) {
        v = hist[t - s];
        MO_REQUIRE(v >= 0, "engram_rows: negative compressed id ", v, " at position ", t - s);
      }
      const uint64_t term = uint64_t(v) * uint64_t(hp.multipliers[size_t(s)]);
      r = s == 0 ? term : (r ^ term);
      if (s == 0) continue;
      // Heads of one order share r and differ only in their prime.
      for (int64_t h = 0; h < n_heads; ++h) {
        const size_t j = size_t((s - 1) * n_heads + h);
        out[j] = int64_t(r % uint64_t(hp.primes[j])) + hp.offsets[j];
      }
    }
  }
}

}  // namespace modelone
