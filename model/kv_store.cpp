#include "model/kv_store.h"

#include <algorithm>

#include "model/check.h"

namespace modelone {

void KvStore::append(const float* rows, int64_t n) {
  const size_t row_bytes = size_t(width_) * dtype_size(dtype_);
  data_.resize(data_.size() + size_t(n) * row_bytes);
  narrow_from_f32(dtype_, rows, data_.data() + size_t(rows_) * row_bytes, size_t(n * width_));
  rows_ += n;
}

void KvStore::read(int64_t r0, int64_t n, float* out) const {
  MO_CHECK(r0 >= 0 && r0 + n <= rows_);
  widen_to_f32(dtype_, data_.data() + size_t(r0 * width_) * dtype_size(dtype_), out,
               size_t(n * width_));
}

const float* KvStore::view(int64_t r0, int64_t n, std::vector<float>& tmp) const {
  MO_CHECK(r0 >= 0 && r0 + n <= rows_);
  if (dtype_ == DType::F32) return reinterpret_cast<const float*>(data_.data()) + r0 * width_;
  tmp.resize(size_t(n * width_));
  read(r0, n, tmp.data());
  return tmp.data();
}

void KvStore::gather(const int32_t* rows, int64_t n, float* out) const {
  for (int64_t i = 0; i < n; ++i) {
    MO_CHECK(rows[i] >= 0 && rows[i] < rows_);
    widen_to_f32(dtype_, raw(rows[i]), out + i * width_, size_t(width_));
  }
}

void KvStore::append_raw(const uint8_t* src, int64_t n) {
  data_.insert(data_.end(), src, src + size_t(n * width_) * dtype_size(dtype_));
  rows_ += n;
}

RingStore::RingStore(DType dtype, int64_t width, int64_t capacity)
    : dtype_(dtype), width_(width), capacity_(capacity),
      data_(size_t(capacity * width) * dtype_size(dtype)) {}

void RingStore::append(const float* rows, int64_t n) {
  if (capacity_ == 0) return;
  const size_t row_bytes = size_t(width_) * dtype_size(dtype_);
  if (n > capacity_) {  // only the last capacity_ rows survive
    rows += (n - capacity_) * width_;
    n = capacity_;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = (head_ + size_) % capacity_;
    narrow_from_f32(dtype_, rows + i * width_, data_.data() + size_t(slot) * row_bytes,
                    size_t(width_));
    if (size_ < capacity_) ++size_;
    else head_ = (head_ + 1) % capacity_;
  }
}

void RingStore::read_all(float* out) const {
  const size_t row_bytes = size_t(width_) * dtype_size(dtype_);
  const int64_t first = std::min(size_, capacity_ - head_);  // head_ .. end of buffer
  widen_to_f32(dtype_, data_.data() + size_t(head_) * row_bytes, out, size_t(first * width_));
  widen_to_f32(dtype_, data_.data(), out + first * width_, size_t((size_ - first) * width_));
}

}  // namespace modelone
