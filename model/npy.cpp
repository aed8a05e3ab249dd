#include "model/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model/check.h"

namespace modelone {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += (i ? ", " : "") + std::to_string(shape[i]);
    n *= shape[i];
  }
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  // Pad so the data starts at a multiple of 64 bytes; the header ends with a newline.
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    MO_REQUIRE(f.good(), "--logits-out: cannot write '", path, "'");
    const char magic[] = "\x93NUMPY\x01\x00";
    f.write(magic, 8);
    const uint16_t hl = uint16_t(dict.size());
    f.write(reinterpret_cast<const char*>(&hl), 2);
    f.write(dict.data(), std::streamsize(dict.size()));
    f.write(reinterpret_cast<const char*>(data), std::streamsize(n * 4));
    MO_REQUIRE(f.good(), "--logits-out: failed writing '", path, "'");
  }
  MO_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, "--logits-out: cannot rename '", tmp,
             "' to '", path, "'");
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
