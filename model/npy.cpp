#include "model/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model/check.h"

namespace modelone {

namespace {
std::string npy_header(const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) dict += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  // Pad so the data starts at a multiple of 64 bytes; the header ends with a newline.
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  const uint16_t hl = uint16_t(dict.size());
  return std::string("\x93NUMPY\x01\x00", 8) + std::string(reinterpret_cast<const char*>(&hl), 2) +
         dict;
}
}  // namespace

NpyWriter::NpyWriter(const std::string& path, int64_t rows, int64_t cols)
    : path_(path), tmp_(path + ".tmp"), rows_(rows), cols_(cols) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  MO_REQUIRE(f_, "--logits-out: cannot write '", path, "'");
  const std::string h = npy_header({rows, cols});
  MO_REQUIRE(std::fwrite(h.data(), 1, h.size(), f_) == h.size(), "--logits-out: failed writing '",
             path, "'");
}

NpyWriter::~NpyWriter() {
  if (!f_) return;
  std::fclose(f_);
  std::remove(tmp_.c_str());
}

void NpyWriter::append(const float* rows, int64_t n) {
  MO_CHECK(written_ + n <= rows_, "npy: more rows than declared");
  MO_REQUIRE(std::fwrite(rows, sizeof(float), size_t(n * cols_), f_) == size_t(n * cols_),
             "--logits-out: failed writing '", path_, "' (disk full?)");
  written_ += n;
}

void NpyWriter::finish() {
  MO_CHECK(written_ == rows_, "npy: ", written_, " of ", rows_, " rows written");
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  MO_REQUIRE(ok, "--logits-out: failed writing '", path_, "'");
  MO_REQUIRE(std::rename(tmp_.c_str(), path_.c_str()) == 0, "--logits-out: cannot rename '", tmp_,
             "' to '", path_, "'");
}

std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>* shape) {
  std::ifstream f(path, std::ios::binary);
  MO_REQUIRE(f.good(), "cannot open '", path, "'");
  char magic[8];
  f.read(magic, 8);
  MO_REQUIRE(std::memcmp(magic, "\x93NUMPY", 6) == 0, path, ": not a .npy file");
  uint16_t hl;
  f.read(reinterpret_cast<char*>(&hl), 2);
  std::string header(hl, '\0');
  f.read(header.data(), hl);
  MO_REQUIRE(header.find("'<f4'") != std::string::npos, path, ": not float32");
  const auto a = header.find('('), b = header.find(')');
  shape->clear();
  std::stringstream ss(header.substr(a + 1, b - a - 1));
  std::string tok;
  int64_t n = 1;
  while (std::getline(ss, tok, ','))
    if (tok.find_first_not_of(' ') != std::string::npos) {
      shape->push_back(std::stoll(tok));
      n *= shape->back();
    }
  std::vector<float> v(static_cast<size_t>(n));
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  MO_REQUIRE(f.good(), path, ": truncated");
  return v;
}

}  // namespace modelone
