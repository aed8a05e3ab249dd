// NumPy .npy output (format 1.0, little-endian float32, C order) for --logits-out, written
// through a temporary file and renamed so a failed run never leaves a half-written result.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace modelone {

// Streams rows of a float32 [rows, cols] array to path: the header first, then rows as they
// come, into path.tmp, renamed to path by finish() only once every row is written.
// Writes a float32 .npy [rows, cols] as rows arrive. The path is checked before any work: a
// directory is refused; a regular file or a new name is written to PATH.tmp.<pid> and renamed
// over PATH only when complete (nothing is lost on failure); a device or a pipe is written in
// place, never replaced. The temporary file is removed on every failure path, SIGINT, SIGTERM
// and SIGHUP included.
class NpyWriter {
 public:
  NpyWriter(const std::string& path, int64_t rows, int64_t cols);
  ~NpyWriter();  // an unfinished file is removed
  // A failed write is kept and reported by finish(): append runs inside the prefill on one rank,
  // where throwing would leave the other ranks in a collective.
  void append(const float* rows, int64_t n);
  void finish();

 private:
  std::string path_, tmp_;  // tmp_ empty: writing in place (a device or a pipe)
  std::string error_;       // the first failed write
  std::FILE* f_ = nullptr;
  bool unnamed_ = false;    // f_ is an O_TMPFILE file, named tmp_ only when complete
  int64_t rows_, cols_, written_ = 0;
};

// Read back a float32 .npy (tests).
std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>* shape);
// A 1-D int32 or int64 .npy (Engram's compression map: one compressed id per token id).
std::vector<int64_t> read_npy_ints(const std::string& path);

}  // namespace modelone
