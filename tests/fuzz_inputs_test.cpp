// Seeded mutation fuzzing of the readers that take user files: the safetensors header, config.json
// and the token-id reader. Thousands of mutated inputs each, from valid seeds; every one must end in
// success or a modelone::Error (the one-line message), never another exception, a crash or (under
// scripts/sanitize.sh) a memory or undefined-behaviour report. What succeeds must be usable: tensor
// data inside the file, sizes that did not overflow. MODELONE_FUZZ_CASES scales the count.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "dist/cli/commands.h"
#include "model/check.h"
#include "model/config.h"
#include "model/config_io.h"
#include "model/model_info.h"
#include "model/safetensors.h"
#include "model/weight_bytes.h"
#include "tests/support.h"

namespace modelone {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

int cases(int base) {
  const char* e = std::getenv("MODELONE_FUZZ_CASES");
  return e ? std::max(1, int(double(base) * std::atof(e))) : base;
}

fs::path scratch() {
  static const fs::path d = [] {
    auto p = fs::temp_directory_path() / ("modelone_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// Values that break readers: boundaries of every integer width, non-numbers, wrong kinds.
json interesting(std::mt19937_64& rng) {
  static const json pool = json::parse(R"([0, -1, 1, 2, 3, 7, 64, 255, 256, 65535, 2147483647,
      2147483648, -2147483648, 4294967296, 9223372036854775807, -9223372036854775808,
      18446744073709551615, 1e308, -1e308, 1e-320, 0.5, -0.0, "", "x", "F32", "BF16", "F8_E4M3",
      "I8", "U8", "F16", "C64", null, true, false, [], [0], [-1, 2], [1, 2, 3], [4294967296, 4294967296],
      [0, 9223372036854775807], {}, {"a": 1}])");
  return pool[size_t(rng() % pool.size())];
}

// Byte-level damage: flips, overwrites with JSON punctuation, deletions, duplications, cuts.
void mutate_bytes(std::string& s, std::mt19937_64& rng) {
  static const std::string punct = "{}[]\",:-+.0123456789eE \\\x00\xff";
  const int n = 1 + int(rng() % 4);
  for (int k = 0; k < n && !s.empty(); ++k) {
    const size_t at = rng() % s.size();
    switch (rng() % 6) {
      case 0: s[at] = char(s[at] ^ (1 << (rng() % 8))); break;
      case 1: s[at] = punct[rng() % punct.size()]; break;
      case 2: s.erase(at, 1 + rng() % 16); break;
      case 3: s.insert(at, s.substr(at, 1 + rng() % 16)); break;
      case 4: s.resize(at); break;
      default: s.insert(at, 1, char(rng())); break;
    }
  }
}

// A JSON value somewhere in v (objects and arrays walked at random), replaced or removed.
void mutate_json(json& v, std::mt19937_64& rng) {
  json* at = &v;
  for (int depth = 0; depth < 4 && (at->is_object() || at->is_array()) && !at->empty(); ++depth) {
    auto it = at->begin();
    std::advance(it, long(rng() % at->size()));
    if (rng() % 3 == 0 && depth > 0) break;
    if (it->is_primitive() || rng() % 2) {
      if (at->is_object() && rng() % 5 == 0) {
        at->erase(it.key());
      } else {
        *it = interesting(rng);
      }
      return;
    }
    at = &*it;
  }
  *at = interesting(rng);
}

// Mappings this process holds: a refused file must not leave one behind.
size_t mappings() {
  std::ifstream f("/proc/self/maps");
  size_t n = 0;
  for (std::string l; std::getline(f, l);) ++n;
  return n;
}

// A small valid safetensors file: a few tensors of each stored kind the runtime reads.
std::string seed_safetensors() {
  const fs::path p = scratch() / "seed.safetensors";
  std::vector<float> a(96, 0.5f), b(64, -1.0f), c(8, 2.0f);
  write_safetensors(p.string(), {{"w.a", DType::F32, {8, 12}, a, {}},
                                 {"w.b", DType::BF16, {4, 16}, b, {}},
                                 {"w.c", DType::F8_E4M3, {2, 4}, c, {}}});
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST(Fuzz, SafetensorsHeader) {
  const std::string seed = seed_safetensors();
  uint64_t n = 0;
  std::memcpy(&n, seed.data(), 8);
  const json header = json::parse(seed.substr(8, n));
  const std::string data = seed.substr(8 + n);
  std::mt19937_64 rng(1);
  int ok = 0, refused = 0;
  const fs::path p = scratch() / "case.safetensors";
  const size_t maps_before = mappings();
  for (int i = 0, N = cases(10000); i < N; ++i) {
    std::string file;
    if (i % 2) {  // structured: a field of the header replaced, lengths kept consistent
      json h = header;
      mutate_json(h, rng);
      const std::string text = h.dump();
      const uint64_t m = text.size();
      file = std::string(reinterpret_cast<const char*>(&m), 8) + text + data;
    } else {
      file = seed;
      mutate_bytes(file, rng);
    }
    std::ofstream(p, std::ios::binary | std::ios::trunc) << file;
    try {
      SafetensorsFile st(p.string());
      const size_t size = fs::file_size(p);
      for (const auto& e : st.entries()) {
        ASSERT_LE(e.begin, e.end) << "case " << i;
        ASSERT_LE(e.end, size) << "case " << i;
        const char* d = static_cast<const char*>(st.data(e));
        volatile char sink = e.end > e.begin ? d[e.end - e.begin - 1] : 0;  // readable to its end
        (void)sink;
      }
      ++ok;
    } catch (const Error& e) {
      ASSERT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "case " << i << ": " << e.what();
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "case " << i << ": not a modelone error: " << e.what();
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  EXPECT_LT(mappings(), maps_before + 16) << "mappings leaked by refused files";
  std::printf("safetensors: %d read, %d refused\n", ok, refused);
}

TEST(Fuzz, ConfigJson) {
  const std::string path = test::data_dir("hf_v4_tiny") + "/config.json";
  std::ifstream f(path);
  const std::string seed((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const json base = json::parse(seed);
  std::mt19937_64 rng(2);
  int ok = 0, refused = 0;
  const fs::path p = scratch() / "config.json";
  for (int i = 0, N = cases(10000); i < N; ++i) {
    std::string text;
    if (i % 4) {
      json c = base;
      for (int k = 0, m = 1 + int(rng() % 3); k < m; ++k) mutate_json(c, rng);
      text = c.dump();
    } else {
      text = seed;
      mutate_bytes(text, rng);
    }
    std::ofstream(p, std::ios::trunc) << text;
    try {
      const ModelConfig cfg = config_from_proto(read_config_json(p.string()), p.string());
      // What `inspect` and the memory check compute from it must not overflow.
      const RankMemory m = rank_memory(cfg, 4096, uniform_weight_bytes(cfg, DType::BF16), DType::BF16, 1, 1);
      ASSERT_GE(m.weight_bytes, 0) << "case " << i << ": " << text;
      ASSERT_GE(m.cache_bytes(), 0) << "case " << i << ": " << text;
      ASSERT_GE(count_params(cfg).total, 0) << "case " << i << ": " << text;
      ++ok;
    } catch (const Error& e) {
      ASSERT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "case " << i << ": " << e.what();
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "case " << i << ": not a modelone error: " << e.what() << "\n" << text;
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  std::printf("config.json: %d read, %d refused\n", ok, refused);
}

TEST(Fuzz, TokenIds) {
  std::mt19937_64 rng(3);
  int ok = 0, refused = 0;
  for (int i = 0, N = cases(50000); i < N; ++i) {
    std::string text = "1, 2,3 17\n42\t9999,0";
    if (i % 3 == 0) {
      text.assign(1 + rng() % 40, '\0');
      for (char& c : text) c = char(rng());
    } else {
      mutate_bytes(text, rng);
      if (rng() % 4 == 0) text += std::to_string(int64_t(rng()));
    }
    try {
      const std::vector<int32_t> ids = parse_ids(text, "--ids");
      for (int32_t id : ids) ASSERT_GE(id, 0) << "case " << i;
      ++ok;
    } catch (const Error& e) {
      const std::string m = e.what();
      for (char c : m) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "case " << i << ": raw byte in " << m;
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "case " << i << ": not a modelone error: " << e.what();
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  std::printf("ids: %d read, %d refused\n", ok, refused);
}

}  // namespace
}  // namespace modelone
