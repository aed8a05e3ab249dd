#include "model/io/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/base/check.h"

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

namespace {
// The temporary file a signal must not leave behind (one writer at a time in this process).
char g_tmp[4096];

extern "C" void remove_tmp_and_die(int sig) {
  if (g_tmp[0]) ::unlink(g_tmp);  // async-signal-safe
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void guard_tmp(const std::string& tmp) {
  std::snprintf(g_tmp, sizeof g_tmp, "%s", tmp.c_str());
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_tmp_and_die);
}

void unguard_tmp() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
  g_tmp[0] = 0;
}
}  // namespace

NpyWriter::NpyWriter(const std::string& path, int64_t rows, int64_t cols)
    : path_(path), rows_(rows), cols_(cols) {
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  MO_REQUIRE(!exists || !S_ISDIR(st.st_mode), "--logits-out: '", path, "' is a directory");
  if (!exists || S_ISREG(st.st_mode)) {
    tmp_ = path + ".tmp." + std::to_string(::getpid());
    // An unnamed file in the target's directory (O_TMPFILE) is named only once complete, so
    // nothing is left behind whatever ends the process, SIGKILL included (mpirun follows its
    // SIGTERM with SIGKILL at once). Where the file system has no O_TMPFILE, a named temporary
    // file that the signal handler removes.
    const std::string dir = std::filesystem::path(path).parent_path().string();
    // (It is named through /proc/self/fd, so only where /proc is mounted.)
    const int fd = ::access("/proc/self/fd", X_OK) != 0 ? -1 :
        ::open(dir.empty() ? "." : dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      f_ = ::fdopen(fd, "wb");
      unnamed_ = f_ != nullptr;
      if (!f_) ::close(fd);
    }
    if (!unnamed_) guard_tmp(tmp_);
  }
  if (!f_) f_ = std::fopen(tmp_.empty() ? path_.c_str() : tmp_.c_str(), "wb");
  if (!f_) {
    const std::string why = std::strerror(errno);
    if (!tmp_.empty() && !unnamed_) unguard_tmp();
    fail("--logits-out: cannot write '", path, "' (", why, ")");
  }
  const std::string h = npy_header({rows, cols});
  MO_REQUIRE(std::fwrite(h.data(), 1, h.size(), f_) == h.size(), "--logits-out: failed writing '",
             path, "'");
}

NpyWriter::~NpyWriter() {
  if (!f_) return;
  std::fclose(f_);
  if (!tmp_.empty() && !unnamed_) {
    std::remove(tmp_.c_str());
    unguard_tmp();
  }
}

void NpyWriter::append(const float* rows, int64_t n) {
  MO_CHECK(written_ + n <= rows_, "npy: more rows than declared");
  written_ += n;
  if (!error_.empty()) return;
  if (std::fwrite(rows, sizeof(float), size_t(n * cols_), f_) != size_t(n * cols_))
    error_ = std::strerror(errno);
}

void NpyWriter::finish() {
  MO_CHECK(written_ == rows_, "npy: ", written_, " of ", rows_, " rows written");
  if (unnamed_ && error_.empty()) {
    // Complete: give the unnamed file the temporary name (renamed over PATH below).
    guard_tmp(tmp_);
    const std::string fd_path = "/proc/self/fd/" + std::to_string(::fileno(f_));
    if (std::fflush(f_) != 0 ||
        ::linkat(AT_FDCWD, fd_path.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) != 0)
      error_ = std::strerror(errno);
  }
  const bool ok = std::fclose(f_) == 0 && error_.empty();
  const std::string why = !error_.empty() ? error_ : ok ? "" : std::strerror(errno);
  f_ = nullptr;
  if (tmp_.empty()) {
    MO_REQUIRE(ok, "--logits-out: failed writing '", path_, "' (", why, ")");
    return;
  }
  const bool renamed = ok && std::rename(tmp_.c_str(), path_.c_str()) == 0;
  const std::string rwhy = renamed || !ok ? "" : std::strerror(errno);
  if (!renamed) std::remove(tmp_.c_str());
  unguard_tmp();  // (also after the unnamed file's name was taken: harmless when not guarded)
  MO_REQUIRE(ok, "--logits-out: failed writing '", path_, "' (", why, ")");
  MO_REQUIRE(renamed, "--logits-out: cannot replace '", path_, "' (", rwhy, ")");
}

namespace {

// Opens a version-1 .npy, checks it is C-ordered, and returns its dtype descr ('<f4', ...) with
// the shape; f is left at the start of the data.
std::string read_npy_header(std::ifstream& f, const std::string& path, std::vector<int64_t>* shape,
                            int64_t* n) {
  MO_REQUIRE(f.good(), "cannot open '", path, "'");
  char magic[8];
  f.read(magic, 8);
  MO_REQUIRE(f.good() && std::memcmp(magic, "\x93NUMPY", 6) == 0 && magic[6] == 1, path,
             ": not a version 1 .npy file");
  uint16_t hl = 0;
  f.read(reinterpret_cast<char*>(&hl), 2);
  std::string header(hl, '\0');
  f.read(header.data(), hl);
  MO_REQUIRE(f.good(), path, ": truncated header");
  MO_REQUIRE(header.find("'fortran_order': False") != std::string::npos, path,
             ": Fortran-ordered arrays are not supported");
  const auto d = header.find("'descr'"), q1 = header.find('\'', d + 8), q2 = header.find('\'', q1 + 1);
  MO_REQUIRE(d != std::string::npos && q1 != std::string::npos && q2 != std::string::npos, path,
             ": malformed header");
  const auto a = header.find('('), b = header.find(')');
  MO_REQUIRE(a != std::string::npos && b != std::string::npos && b > a, path, ": malformed shape");
  shape->clear();
  std::stringstream ss(header.substr(a + 1, b - a - 1));
  std::string tok;
  *n = 1;
  while (std::getline(ss, tok, ',')) {
    const size_t p0 = tok.find_first_not_of(' '), p1 = tok.find_last_not_of(' ');
    if (p0 == std::string::npos) continue;
    const std::string num = tok.substr(p0, p1 - p0 + 1);
    // Digits only, at most 13 of them (< 2^40 each): no stoll exceptions, no overflow below.
    MO_REQUIRE(!num.empty() && num.size() <= 13 && num.find_first_not_of("0123456789") == std::string::npos,
               path, ": bad shape entry '", printable(num), "'");
    shape->push_back(std::stoll(num));
    MO_REQUIRE(shape->back() < (int64_t(1) << 40), path, ": bad shape");
    MO_REQUIRE(shape->back() == 0 || *n <= (int64_t(1) << 40) / shape->back(), path,
               ": the shape holds more than 2^40 entries");
    *n *= shape->back();
  }
  return header.substr(q1 + 1, q2 - q1 - 1);
}

// The bytes left after the header must hold the n entries of item_bytes each: checked before
// anything is allocated for them.
void require_data(std::ifstream& f, const std::string& path, int64_t n, int64_t item_bytes) {
  const std::streamoff at = f.tellg();
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  f.seekg(at);
  MO_REQUIRE(f.good() && at >= 0 && end >= at, path, ": cannot read its data");
  const int64_t have = int64_t(end - at);
  MO_REQUIRE(have / item_bytes >= n, path, ": truncated (the header declares ", n, " entries of ",
             item_bytes, " bytes; the file holds ", have, " bytes of data)");
}

}  // namespace

std::vector<int64_t> read_npy_ints(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<int64_t> shape;
  int64_t n = 0;
  const std::string descr = read_npy_header(f, path, &shape, &n);
  MO_REQUIRE(shape.size() == 1, path, ": expected a 1-D array, got ", shape.size(), " dims");
  MO_REQUIRE(descr == "<i4" || descr == "<i8", path, ": expected int32 or int64, got '", printable(descr), "'");
  require_data(f, path, n, descr == "<i8" ? 8 : 4);
  std::vector<int64_t> v(static_cast<size_t>(n));
  if (descr == "<i8") {
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 8));
  } else {
    std::vector<int32_t> w(static_cast<size_t>(n));
    f.read(reinterpret_cast<char*>(w.data()), std::streamsize(n * 4));
    v.assign(w.begin(), w.end());
  }
  MO_REQUIRE(f.good(), path, ": truncated");
  return v;
}

std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>* shape) {
  std::ifstream f(path, std::ios::binary);
  int64_t n = 0;
  MO_REQUIRE(read_npy_header(f, path, shape, &n) == "<f4", path, ": not float32");
  require_data(f, path, n, 4);
  std::vector<float> v(static_cast<size_t>(n));
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  MO_REQUIRE(f.good(), path, ": truncated");
  return v;
}

}  // namespace modelone
