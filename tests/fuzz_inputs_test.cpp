// Seeded mutation fuzzing of the readers that take user files: the safetensors header, config.json,
// the token-id reader, .npy files and tokenizer.json. Thousands of mutated inputs each, from valid seeds; every one must end in
// success or a modelone::Error (the one-line message), never another exception, a crash or (under
// scripts/sanitize.sh) a memory or undefined-behaviour report. What succeeds must be usable: tensor
// data inside the file, sizes that did not overflow. MODELONE_FUZZ_CASES scales the count.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "dist/cli/prompt_input.h"
#include "model/base/check.h"
#include "model/config/config.h"
#include "model/config/config_io.h"
#include "model/config/model_info.h"
#include "model/io/npy.h"
#include "model/io/safetensors.h"
#include "model/text/tokenizer.h"
#include "model/io/weight_sizes.h"
#include "tests/support.h"
#include "tests/tokenizer_json.h"

namespace modelone {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::added;
using test::byte_char;
using test::make_json;

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

// The data segment this process holds (VmData of /proc/self/status), in bytes.
int64_t data_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string key; f >> key;) {
    int64_t kb = 0;
    if (key == "VmData:" && f >> kb) return kb * 1024;
  }
  return -1;
}

// Runs body() in a child process whose data segment may grow by at most `growth` bytes
// (RLIMIT_DATA: heap and private mappings alike), so a reader that allocates more for a small
// file fails with bad_alloc there. body returns "" or what went wrong; so does this. Under the
// sanitizers (whose allocator keeps freed memory in quarantine) body runs here, unbounded.
std::string bounded(const std::function<std::string()>& body, int64_t growth) {
  if (std::getenv("MODELONE_SANITIZED")) return body();
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const rlimit lim{rlim_t(data_bytes() + growth), rlim_t(data_bytes() + growth)};
    std::string out;
    if (::setrlimit(RLIMIT_DATA, &lim) != 0) out = "setrlimit failed";
    else {
      try {
        out = body();
      } catch (const std::bad_alloc&) {
        out = "allocated more than the bound (std::bad_alloc)";
      } catch (const std::exception& e) {
        out = std::string("escaped: ") + e.what();
      }
    }
    std::fflush(stdout);
    if (!out.empty()) (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, size_t(n));
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!WIFEXITED(st)) return "the child died (signal " + std::to_string(WTERMSIG(st)) + "): " + got;
  return got;
}

constexpr int64_t kBound = int64_t(64) << 20;  // what a file under 1 MiB may cost to read

// A small valid .npy: version 1, the given descr and 1-D shape, then n items of `item` bytes.
std::string npy_file(const std::string& descr, const std::string& shape, int64_t n, int item) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  const uint16_t hl = uint16_t(dict.size());
  std::string f = std::string("\x93NUMPY\x01\x00", 8) + std::string(reinterpret_cast<const char*>(&hl), 2) + dict;
  for (int64_t i = 0; i < n * item; ++i) f += char(i % 7);
  return f;
}

TEST(Fuzz, NpyFiles) {
  const fs::path p = scratch() / "case.npy";
  const std::string err = bounded([&] {
    std::mt19937_64 rng(4);
    const char* shapes[] = {"(250000000,)", "(1000000000,)", "(1e9,)", "(-1,)", "(abc,)", "()",
                            "(4294967296, 4294967296)", "(9223372036854775807,)", "(12,)", "(3, 4)",
                            "(99999999999999999999999,)", "(12", "(,)"};
    int ok = 0, refused = 0;
    for (int i = 0, N = cases(4000); i < N; ++i) {
      const bool ints = i % 2;
      std::string f = npy_file(ints ? (i % 4 == 1 ? "<i4" : "<i8") : "<f4",
                               i % 3 ? shapes[rng() % std::size(shapes)] : "(12,)", 12, ints && i % 4 != 1 ? 8 : 4);
      if (i % 5 == 0) mutate_bytes(f, rng);
      std::ofstream(p, std::ios::binary | std::ios::trunc) << f;
      try {
        std::vector<int64_t> shape;
        if (ints) {
          const auto v = read_npy_ints(p.string());
          if (v.size() * 4 > f.size()) return "case " + std::to_string(i) + ": more entries than bytes";
        } else {
          const auto v = read_npy_f32(p.string(), &shape);
          if (v.size() * 4 > f.size()) return "case " + std::to_string(i) + ": more entries than bytes";
        }
        ++ok;
      } catch (const Error& e) {
        const std::string m = e.what();
        if (m.find('\n') != std::string::npos) return "case " + std::to_string(i) + ": " + m;
        ++refused;
      }
    }
    std::printf("npy: %d read, %d refused\n", ok, refused);
    return std::string(ok > 0 && refused > 0 ? "" : "no case read, or none refused");
  }, kBound);
  EXPECT_EQ(err, "");
}

TEST(Fuzz, TokenizerJson) {
  const json base = make_json();
  const std::string seed = base.dump();
  ASSERT_LT(seed.size() * 2, size_t(1) << 20);
  const std::string err = bounded([&] {
    std::mt19937_64 rng(5);
    int ok = 0, refused = 0;
    for (int i = 0, N = cases(3000); i < N; ++i) {
      std::string text;
      if (i % 3 == 0) {
        text = seed;
        mutate_bytes(text, rng);
      } else {
        json j = base;
        if (i % 7 == 0) j["model"]["vocab"]["<big>"] = 100000000;  // one id of 1e8
        if (i % 11 == 0) j["added_tokens"].push_back(added(2147483646, "<x>", true));
        if (i % 3 == 1) j["model"]["vocab"][byte_char(int(rng() % 256))] = interesting(rng);
        else mutate_json(j, rng);
        text = j.dump();
      }
      try {
        const Tokenizer t = Tokenizer::parse(text, "fuzz/tokenizer.json");
        const std::vector<int32_t> ids = t.encode("hello world 123 <|eot|>");
        (void)t.decode(ids);
        (void)t.decode({100000000, 2147483646, 0});
        ++ok;
      } catch (const Error& e) {
        const std::string m = e.what();
        if (m.find('\n') != std::string::npos) return "case " + std::to_string(i) + ": " + m;
        ++refused;
      }
    }
    std::printf("tokenizer.json: %d read, %d refused\n", ok, refused);
    return std::string(ok > 0 && refused > 0 ? "" : "no case read, or none refused");
  }, kBound);
  EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace modelone
