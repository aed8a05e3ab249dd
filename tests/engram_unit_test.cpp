// Engram's hashed n-gram row indices: the V4.1 multipliers and primes against values computed with
// real numpy and the reference's prime search, one hash spelled out by hand for every column
// (padding before the sequence start included), chunked calls against one call, and bad input.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "model/base/check.h"
#include "model/blocks/engram_hash.h"

namespace modelone {
namespace {

// Independent of the Miller-Rabin under test: plain trial division.
bool trial_prime(int64_t n) {
  if (n < 2) return false;
  for (int64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

// V4.1-Flash: engram_layer_ids [1, 14], max n-gram 4, 8 heads, prime search from 16,000,000,
// compressed vocab 99,092.
std::vector<EngramHashParams> v41() {
  return engram_hash_params({1, 14}, 4, 8, 16000000, 99092);
}

TEST(EngramHash, V41Multipliers) {
  // B = ((2^63 - 1) // 99092) // 2, as numpy's integers(0, B) bound.
  EXPECT_EQ((INT64_MAX / 99092) / 2, 46539438283891);
  const auto p = v41();
  ASSERT_EQ(p.size(), 2u);
  // Expected values from numpy 1.24: default_rng(10007 * layer).integers(0, B, 4) * 2 + 1.
  EXPECT_EQ(p[0].multipliers,
            (std::vector<int64_t>{76632096046245, 4839876093313, 35959672319349, 73987337458391}));
  EXPECT_EQ(p[1].multipliers, (std::vector<int64_t>{67716810739261, 51510806800915,
                                                    30921347202721, 82619226485591}));
  // The same draws straight from the numpy stand-in.
  const auto raw = numpy_default_rng_integers(10007, 46539438283891, 4);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(raw[i] * 2 + 1, p[0].multipliers[i]);
}

TEST(EngramHash, V41Primes) {
  const auto p = v41();
  ASSERT_EQ(p.size(), 2u);
  for (const auto& hp : p) {
    ASSERT_EQ(hp.primes.size(), 24u);
    ASSERT_EQ(hp.offsets.size(), 24u);
  }
  EXPECT_EQ(p[0].primes.front(), 16000057);
  EXPECT_EQ(p[0].primes.back(), 16000463);
  EXPECT_EQ(p[1].primes.front(), 16000477);
  EXPECT_EQ(p[1].primes.back(), 16000889);
  // Row counts of the two tables, as engram_num_embeddings in the V4.1 config.
  EXPECT_EQ(p[0].rows, 384006168);
  EXPECT_EQ(p[1].rows, 384016682);

  // Every prime in [16000000, 16000889] is used exactly once, in increasing order, layer 1 first:
  // checked against trial division, so no prime is skipped or reused.
  std::vector<int64_t> all;
  for (const auto& hp : p) all.insert(all.end(), hp.primes.begin(), hp.primes.end());
  std::vector<int64_t> expect;
  for (int64_t n = 16000000; n <= 16000889; ++n)
    if (trial_prime(n)) expect.push_back(n);
  EXPECT_EQ(all, expect);

  for (const auto& hp : p) {
    int64_t off = 0;
    for (size_t j = 0; j < hp.primes.size(); ++j) {
      EXPECT_EQ(hp.offsets[j], off) << "column " << j;
      off += hp.primes[j];
    }
    EXPECT_EQ(hp.rows, off);
  }
}

TEST(EngramHash, PrimeTest) {
  for (int64_t n = 0; n < 20000; ++n) EXPECT_EQ(is_prime_u64(uint64_t(n)), trial_prime(n)) << n;
  EXPECT_TRUE(is_prime_u64(1000000007ull));
  EXPECT_TRUE(is_prime_u64((1ull << 61) - 1));               // Mersenne prime
  EXPECT_TRUE(is_prime_u64(18446744073709551557ull));        // largest 64-bit prime
  EXPECT_FALSE(is_prime_u64(3215031751ull));                 // strong pseudoprime to 2, 3, 5, 7
  EXPECT_FALSE(is_prime_u64(3825123056546413051ull));        // strong pseudoprime to 2 .. 23
  EXPECT_FALSE(is_prime_u64(18446744073709551615ull));
  EXPECT_FALSE(is_prime_u64(4294967297ull));                 // 641 * 6700417
}

TEST(EngramHash, PrimeSearchIncludesStart) {
  // A start that is itself prime is taken; the next layer continues after the last one.
  const auto p = engram_hash_params({0, 5}, 2, 2, 1009, 400);
  EXPECT_EQ(p[0].primes, (std::vector<int64_t>{1009, 1013}));
  EXPECT_EQ(p[1].primes, (std::vector<int64_t>{1019, 1021}));
  EXPECT_EQ(p[1].offsets, (std::vector<int64_t>{0, 1019}));
  EXPECT_EQ(p[1].rows, 2040);
}

// max_ngram 3 (orders 2 and 3), 2 heads: C = 4 columns; the primes >= 1000 are 1009, 1013, 1019,
// 1021, so the offsets are 0, 1009, 2022, 3041 and the table has 4062 rows.
TEST(EngramHash, HandComputedRows) {
  const auto p = engram_hash_params({1}, 3, 2, 1000, 400);
  ASSERT_EQ(p.size(), 1u);
  const EngramHashParams& hp = p[0];
  EXPECT_EQ(hp.primes, (std::vector<int64_t>{1009, 1013, 1019, 1021}));
  EXPECT_EQ(hp.offsets, (std::vector<int64_t>{0, 1009, 2022, 3041}));
  EXPECT_EQ(hp.rows, 4062);
  ASSERT_EQ(hp.multipliers.size(), 3u);
  const int64_t B = (INT64_MAX / 400) / 2;
  for (int64_t m : hp.multipliers) {
    EXPECT_EQ(m % 2, 1);
    EXPECT_LT(m, 2 * B);
    EXPECT_LT(__int128(399) * m, __int128(INT64_MAX));  // the largest id cannot overflow
  }
  const int64_t M0 = hp.multipliers[0], M1 = hp.multipliers[1], M2 = hp.multipliers[2];

  const std::vector<int32_t> hist = {5, 17, 399, 0, 123};
  const int64_t pad = 7;
  // For each position: the token, the one before, the one before that (pad before the start).
  // Order 2 hashes r2 = a*M0 ^ b*M1 (columns 0, 1), order 3 r3 = r2 ^ c*M2 (columns 2, 3).
  auto cols = [](int64_t r2, int64_t r3) {
    return std::vector<int64_t>{r2 % 1009 + 0, r2 % 1013 + 1009, r3 % 1019 + 2022,
                                r3 % 1021 + 3041};
  };
  std::vector<std::vector<int64_t>> expect;
  {  // t = 0: both earlier slots are the pad
    const int64_t r2 = (5 * M0) ^ (7 * M1);
    expect.push_back(cols(r2, r2 ^ (7 * M2)));
  }
  {  // t = 1: the slot two back is the pad
    const int64_t r2 = (17 * M0) ^ (5 * M1);
    expect.push_back(cols(r2, r2 ^ (7 * M2)));
  }
  {  // t = 2
    const int64_t r2 = (399 * M0) ^ (17 * M1);
    expect.push_back(cols(r2, r2 ^ (5 * M2)));
  }
  {  // t = 3: id 0 contributes nothing to the xor
    const int64_t r2 = (0 * M0) ^ (399 * M1);
    expect.push_back(cols(r2, r2 ^ (17 * M2)));
  }
  {  // t = 4
    const int64_t r2 = (123 * M0) ^ (0 * M1);
    expect.push_back(cols(r2, r2 ^ (399 * M2)));
  }

  std::vector<int64_t> rows(5 * 4, -1);
  engram_rows(hp, 2, hist.data(), 0, 5, pad, rows.data());
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t j = 0; j < 4; ++j) {
      const int64_t got = rows[size_t(t * 4 + j)];
      EXPECT_EQ(got, expect[size_t(t)][size_t(j)]) << "t=" << t << " j=" << j;
      EXPECT_GE(got, hp.offsets[size_t(j)]);
      EXPECT_LT(got, hp.offsets[size_t(j)] + hp.primes[size_t(j)]);
    }

  // The pad matters only where it is read: a different pad changes t = 0 and 1 and nothing after.
  std::vector<int64_t> rows9(5 * 4);
  engram_rows(hp, 2, hist.data(), 0, 5, 9, rows9.data());
  EXPECT_NE(std::vector<int64_t>(rows.begin(), rows.begin() + 8),
            std::vector<int64_t>(rows9.begin(), rows9.begin() + 8));
  EXPECT_EQ(std::vector<int64_t>(rows.begin() + 8, rows.end()),
            std::vector<int64_t>(rows9.begin() + 8, rows9.end()));
}

// Prefill in chunks then decode one token at a time gives the rows of one whole-sequence call.
TEST(EngramHash, ChunksMatchWholeSequence) {
  const auto p = v41();
  std::vector<int32_t> hist(37);
  for (size_t i = 0; i < hist.size(); ++i) hist[i] = int32_t((i * 7919 + 13) % 99092);
  hist[5] = 99091;  // the largest compressed id
  const int64_t T = int64_t(hist.size()), C = 24, pad = 2;
  for (const auto& hp : p) {
    std::vector<int64_t> whole(size_t(T * C));
    engram_rows(hp, 8, hist.data(), 0, T, pad, whole.data());
    std::vector<int64_t> pieces(size_t(T * C));
    engram_rows(hp, 8, hist.data(), 0, 2, pad, pieces.data());
    engram_rows(hp, 8, hist.data(), 2, 20, pad, pieces.data() + 2 * C);
    for (int64_t t = 22; t < T; ++t)
      engram_rows(hp, 8, hist.data(), t, 1, pad, pieces.data() + t * C);
    EXPECT_EQ(pieces, whole);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < C; ++j) {
        const int64_t r = whole[size_t(t * C + j)];
        EXPECT_GE(r, hp.offsets[size_t(j)]);
        EXPECT_LT(r, hp.offsets[size_t(j)] + hp.primes[size_t(j)]);
      }
  }
}

TEST(EngramHash, BadParametersThrow) {
  EXPECT_THROW(engram_hash_params({1}, 1, 8, 16000000, 99092), Error);   // max_ngram < 2
  EXPECT_THROW(engram_hash_params({1}, 4, 8, 16000000, 0), Error);       // compressed vocab 0
  EXPECT_THROW(engram_hash_params({1}, 4, 8, 16000000, -5), Error);
  EXPECT_THROW(engram_hash_params({1}, 4, 0, 16000000, 99092), Error);   // no heads
  EXPECT_THROW(engram_hash_params({1}, 4, 8, 1, 99092), Error);          // prime start < 2
  EXPECT_THROW(engram_hash_params({-1}, 4, 8, 16000000, 99092), Error);  // negative layer
  // So large a vocab that numpy would draw multipliers through its 32-bit path.
  EXPECT_THROW(engram_hash_params({1}, 4, 8, 16000000, int64_t(1) << 40), Error);
  EXPECT_THROW(numpy_default_rng_integers(1, int64_t(1) << 32, 4), Error);
  EXPECT_THROW(numpy_default_rng_integers(1, int64_t(1) << 40, -1), Error);

  const auto p = engram_hash_params({1}, 3, 2, 1000, 400);
  const std::vector<int32_t> hist = {1, 2, 3};
  std::vector<int64_t> rows(3 * 4);
  EXPECT_THROW(engram_rows(p[0], 3, hist.data(), 0, 3, 7, rows.data()), Error);  // heads mismatch
  EXPECT_THROW(engram_rows(p[0], 2, hist.data(), 0, 3, -1, rows.data()), Error);  // negative pad
  EXPECT_THROW(engram_rows(p[0], 2, hist.data(), -1, 3, 7, rows.data()), Error);
  const std::vector<int32_t> neg = {1, -2, 3};
  EXPECT_THROW(engram_rows(p[0], 2, neg.data(), 0, 3, 7, rows.data()), Error);
  EngramHashParams broken = p[0];
  broken.offsets.pop_back();
  EXPECT_THROW(engram_rows(broken, 2, hist.data(), 0, 3, 7, rows.data()), Error);
}

// One position of V4.1's first Engram layer (layer 1), every column, with the real multipliers
// and primes: expected rows computed outside this code base (Python's unbounded integers over the
// formula of DeepSeek's Engram reference, primes by trial division from 16,000,000).
TEST(EngramHash, V41RowsOfOnePositionEveryColumn) {
  const EngramHashParams hp = v41()[0];
  const std::vector<int32_t> hist = {5, 99091, 12345, 777};
  std::vector<int64_t> rows(24);
  engram_rows(hp, 8, hist.data(), 3, 1, 42, rows.data());  // t = 3: a full 4-gram
  const std::vector<int64_t> t3 = {
      8192402,   26690386,  40008856,  50558610,  66391497,  87671455,  98311850,  127339173,
      143722725, 147257316, 170601366, 186604207, 204083609, 218836774, 224482888, 251110777,
      256042716, 280109181, 302863560, 307744039, 332888405, 339439420, 366870958, 379501213};
  EXPECT_EQ(rows, t3);
  engram_rows(hp, 8, hist.data(), 1, 1, 42, rows.data());  // t = 1: orders 3 and 4 see the pad
  const std::vector<int64_t> t1 = {
      7183769,   20516649,  39152584,  52781975,  77701316,  93601195,  110974967, 120231173,
      134642268, 146748412, 169827214, 181463785, 207673657, 217593572, 224492021, 248480753,
      261973763, 275083503, 298059611, 312752739, 329068688, 347323006, 363215530, 383757716};
  EXPECT_EQ(rows, t1);
}

}  // namespace
}  // namespace modelone
