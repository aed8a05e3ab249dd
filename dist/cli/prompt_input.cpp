#include "dist/cli/prompt_input.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "model/base/check.h"

namespace modelone {

namespace {
// At most max_bytes + 1 bytes of the stream: one more than allowed is enough to refuse it.
std::string read_capped(std::istream& in, int64_t max_bytes) {
  std::string out;
  std::vector<char> buf(1 << 16);
  while (int64_t(out.size()) <= max_bytes && in) {
    const int64_t want = std::min<int64_t>(int64_t(buf.size()), max_bytes + 1 - int64_t(out.size()));
    in.read(buf.data(), std::streamsize(want));
    out.append(buf.data(), size_t(in.gcount()));
  }
  return out;
}

std::string read_file(const std::string& path, const char* flag, int64_t max_bytes) {
  std::string text;
  if (path == "-") {
    text = read_capped(std::cin, max_bytes);
  } else {
    MO_REQUIRE(!std::filesystem::is_directory(path), flag, ": '", path, "' is a directory");
    std::ifstream f(path, std::ios::binary);
    MO_REQUIRE(f.good(), flag, ": cannot open '", path, "'");
    text = read_capped(f, max_bytes);
  }
  MO_REQUIRE(int64_t(text.size()) <= max_bytes, flag, ": '", path, "' holds more than ", max_bytes,
             " bytes, more than the longest prompt this model takes can need");
  return text;
}
}  // namespace

std::string read_input_once(const comm::Comm& world, const std::string& path, const char* flag,
                            int64_t max_bytes) {
  std::string text;
  comm::agree(world, [&] {
    if (world.rank() == 0) text = read_file(path, flag, max_bytes);
  });
  world.bcast_string(&text, 0);
  return text;
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& what) {
  std::vector<int32_t> ids;
  std::string tok;
  auto flush = [&] {
    if (tok.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MO_REQUIRE(used == tok.size() && v >= 0 && v <= INT32_MAX, what, ": '", printable(tok),
               "' is not a token id");
    ids.push_back(int32_t(v));
    tok.clear();
  };
  for (char c : text) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) flush();
    else tok += c;
  }
  flush();
  return ids;
}

}  // namespace modelone
