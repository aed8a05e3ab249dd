// Row stores for cached keys: rows of a fixed width kept in the cache dtype (fp32, bf16, or fp8 in
// FlashMLA's MODEL1 layout, model/cache/kv_fp8.h) and widened to fp32 on read. KvStore grows
// (compressed entries, indexer keys); RingStore keeps the last `capacity` rows (the window).
#pragma once
#include <cstdint>
#include <vector>

#include "model/base/dtype.h"

namespace modelone {

// How one row of `width` values is stored. F8_E4M3 rows: with rope >= 0 a MODEL1 KV entry (the
// trailing rope values in bf16, a scale per 64 of the rest), else an fp8 indexer key (a scale
// per 128). F4_E2M1 rows: DeepSeek-V4.1's trained form (model/cache/kv_v41.h): a window row in FP8
// (`window`), an entry (rope >= 0) or an indexer key (rope < 0) in FP4.
struct KvRowFormat {
  DType dtype = DType::F32;
  int64_t width = 0, rope = -1;
  bool window = false;  // a sliding-window row
  int64_t row_bytes() const;
  void encode(const float* x, int64_t n, uint8_t* out) const;  // n rows
  void decode(const uint8_t* in, int64_t n, float* x) const;
  void round_trip(float* x, int64_t n) const;  // x becomes what storing and reading it gives
};

class KvStore {
 public:
  KvStore() = default;
  KvStore(DType dtype, int64_t width, int64_t rope = -1) : codec_{dtype, width, rope} {}

  int64_t rows() const { return rows_; }
  int64_t width() const { return codec_.width; }
  DType dtype() const { return codec_.dtype; }
  const KvRowFormat& codec() const { return codec_; }
  size_t bytes() const { return data_.size(); }

  void append(const float* rows, int64_t n);
  // Room for `rows` rows in all, so appends up to there never move the store (a doubling copy
  // of a 1M-token cache is a decode step's worth of time).
  void reserve(int64_t rows) { data_.reserve(size_t(rows * codec_.row_bytes())); }
  void read(int64_t r0, int64_t n, float* out) const;
  // Rows [r0, r0 + n) as fp32: a pointer into the store when it is fp32, else widened into tmp
  // (keep tmp between calls: a fresh large buffer costs page faults on every call).
  const float* view(int64_t r0, int64_t n, std::vector<float>& tmp) const;
  // Rows [r0, r0 + n) as bf16 [n_pad, width], rows n.. zero (n_pad >= n rounds a tile up to a
  // shape the matmul kernels already know): a pointer into the store when it is bf16 and
  // n_pad == n, else decoded into tmp (fp8 keys exactly: e4m3 times a power of two).
  const uint16_t* view_bf16(int64_t r0, int64_t n, int64_t n_pad, std::vector<uint16_t>& tmp) const;
  // out[n, width] = rows[i] widened, for the n row numbers in rows.
  void gather(const int32_t* rows, int64_t n, float* out) const;
  // The same as bf16 [n_pad, width], rows n.. zero (bf16 stores copy their bytes).
  void gather_bf16(const int32_t* rows, int64_t n, int64_t n_pad, std::vector<uint16_t>& out) const;
  const uint8_t* raw(int64_t r) const { return data_.data() + size_t(r * codec_.row_bytes()); }
  void clear() { data_.clear(); rows_ = 0; }

 private:
  KvRowFormat codec_;
  int64_t rows_ = 0;
  std::vector<uint8_t> data_;
};

class RingStore {
 public:
  RingStore() = default;
  RingStore(DType dtype, int64_t width, int64_t capacity, int64_t rope = -1);  // window rows

  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  DType dtype() const { return codec_.dtype; }
  size_t bytes() const { return data_.size(); }
  void append(const float* rows, int64_t n);  // keeps the last `capacity` rows
  void read_all(float* out) const;            // oldest first, size() rows
  void clear() { size_ = head_ = 0; }

 private:
  KvRowFormat codec_;
  int64_t capacity_ = 0, size_ = 0, head_ = 0;  // head_: slot of the oldest row
  std::vector<uint8_t> data_;
};

}  // namespace modelone
