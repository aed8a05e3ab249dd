#include "model/cache/kv_store.h"

#include <algorithm>

#include <cmath>
#include <cstring>

#include "model/kernels/bf16_decode.h"
#include "model/base/check.h"
#include "model/cache/kv_fp8.h"
#include "model/cache/kv_v41.h"

namespace modelone {

namespace {
V41Row v41_kind(const KvRowFormat& f) {
  return f.window ? V41Row::Window : f.rope >= 0 ? V41Row::Entry : V41Row::Key;
}
}  // namespace

int64_t KvRowFormat::row_bytes() const {
  if (dtype == DType::F4_E2M1) return v41_row_bytes(v41_kind(*this), width);
  if (dtype != DType::F8_E4M3) return width * int64_t(dtype_size(dtype));
  return rope >= 0 ? fp8_entry_bytes(width, rope) : fp8_key_bytes(width);
}

void KvRowFormat::encode(const float* x, int64_t n, uint8_t* out) const {
  if (dtype == DType::F4_E2M1) {
    const int64_t rb = row_bytes();
    for (int64_t r = 0; r < n; ++r) v41_row_encode(v41_kind(*this), x + r * width, width, out + r * rb);
    return;
  }
  if (dtype != DType::F8_E4M3) {
    narrow_from_f32(dtype, x, out, size_t(n * width));
    return;
  }
  const int64_t rb = row_bytes();
  for (int64_t r = 0; r < n; ++r) {
    if (rope >= 0) fp8_entry_encode(x + r * width, width, rope, out + r * rb);
    else fp8_key_encode(x + r * width, width, out + r * rb);
  }
}

void KvRowFormat::decode(const uint8_t* in, int64_t n, float* x) const {
  if (dtype == DType::F4_E2M1) {
    const int64_t rb = row_bytes();
    for (int64_t r = 0; r < n; ++r) v41_row_decode(v41_kind(*this), in + r * rb, width, x + r * width);
    return;
  }
  if (dtype != DType::F8_E4M3) {
    widen_to_f32(dtype, in, x, size_t(n * width));
    return;
  }
  const int64_t rb = row_bytes();
  for (int64_t r = 0; r < n; ++r) {
    if (rope >= 0) fp8_entry_decode(in + r * rb, width, rope, x + r * width);
    else fp8_key_decode(in + r * rb, width, x + r * width);
  }
}

void KvRowFormat::round_trip(float* x, int64_t n) const {
  if (dtype == DType::F32) return;
  if (dtype != DType::F8_E4M3 && dtype != DType::F4_E2M1) {
    round_to_dtype(dtype, x, size_t(n * width));
    return;
  }
  std::vector<uint8_t> tmp(static_cast<size_t>(row_bytes()));
  for (int64_t r = 0; r < n; ++r) {
    encode(x + r * width, 1, tmp.data());
    decode(tmp.data(), 1, x + r * width);
  }
}

void KvStore::append(const float* rows, int64_t n) {
  const size_t rb = size_t(codec_.row_bytes());
  data_.resize(data_.size() + size_t(n) * rb);
  codec_.encode(rows, n, data_.data() + size_t(rows_) * rb);
  rows_ += n;
}

void KvStore::read(int64_t r0, int64_t n, float* out) const {
  MO_CHECK(r0 >= 0 && r0 + n <= rows_);
  codec_.decode(raw(r0), n, out);
}

const float* KvStore::view(int64_t r0, int64_t n, std::vector<float>& tmp) const {
  MO_CHECK(r0 >= 0 && r0 + n <= rows_);
  if (codec_.dtype == DType::F32) return reinterpret_cast<const float*>(data_.data()) + r0 * codec_.width;
  tmp.resize(size_t(n * codec_.width));
  read(r0, n, tmp.data());
  return tmp.data();
}

const uint16_t* KvStore::view_bf16(int64_t r0, int64_t n, int64_t n_pad,
                                   std::vector<uint16_t>& tmp) const {
  MO_CHECK(r0 >= 0 && r0 + n <= rows_ && n_pad >= n);
  const int64_t w = codec_.width;
  if (codec_.dtype == DType::BF16 && n_pad == n)
    return reinterpret_cast<const uint16_t*>(data_.data()) + r0 * w;
  tmp.resize(size_t(n_pad * w));
  std::fill(tmp.begin() + n * w, tmp.end(), uint16_t(0));
  if (codec_.dtype == DType::BF16) {
    std::copy_n(reinterpret_cast<const uint16_t*>(data_.data()) + r0 * w, n * w, tmp.begin());
  } else if (codec_.dtype == DType::F4_E2M1) {  // V4.1's rows: decoded straight to bf16
    for (int64_t r = 0; r < n; ++r) v41_row_decode_bf16(v41_kind(codec_), raw(r0 + r), w, tmp.data() + r * w);
  } else if (codec_.dtype == DType::F8_E4M3 && codec_.rope < 0) {  // fp8 keys: a scale per 128
    const int64_t tile = 128;  // kv_fp8's key tile
    for (int64_t r = 0; r < n; ++r) {
      const uint8_t* row = raw(r0 + r);
      for (int64_t a = 0, t = 0; a < w; a += tile, ++t) {
        float s;
        std::memcpy(&s, row + w + 4 * t, 4);
        int e2;
        std::frexp(s, &e2);  // s = 2^(e2 - 1)
        e4m3_to_bf16(row + a, std::min(tile, w - a), e2 - 1, tmp.data() + r * w + a);
      }
    }
  } else {
    std::vector<float> f(size_t(n * w));
    read(r0, n, f.data());
    for (int64_t i = 0; i < n * w; ++i) tmp[size_t(i)] = f32_to_bf16(f[size_t(i)]);
  }
  return tmp.data();
}

void KvStore::gather(const int32_t* rows, int64_t n, float* out) const {
  for (int64_t i = 0; i < n; ++i) {
    MO_CHECK(rows[i] >= 0 && rows[i] < rows_);
    codec_.decode(raw(rows[i]), 1, out + i * codec_.width);
  }
}

void KvStore::gather_bf16(const int32_t* rows, int64_t n, int64_t n_pad,
                          std::vector<uint16_t>& out) const {
  const int64_t w = codec_.width;
  out.assign(size_t(n_pad * w), 0);
  static thread_local std::vector<float> f;
  f.resize(size_t(w));
  for (int64_t i = 0; i < n; ++i) {
    MO_CHECK(rows[i] >= 0 && rows[i] < rows_);
    if (codec_.dtype == DType::BF16) {
      std::memcpy(out.data() + i * w, raw(rows[i]), size_t(w) * 2);
      continue;
    }
    if (codec_.dtype == DType::F4_E2M1) {
      v41_row_decode_bf16(v41_kind(codec_), raw(rows[i]), w, out.data() + i * w);
      continue;
    }
    codec_.decode(raw(rows[i]), 1, f.data());
    for (int64_t c = 0; c < w; ++c) out[size_t(i * w + c)] = f32_to_bf16(f[size_t(c)]);
  }
}

RingStore::RingStore(DType dtype, int64_t width, int64_t capacity, int64_t rope)
    : codec_{dtype, width, rope, /*window=*/true}, capacity_(capacity),
      data_(size_t(capacity * codec_.row_bytes())) {}

void RingStore::append(const float* rows, int64_t n) {
  if (capacity_ == 0) return;
  const int64_t w = codec_.width, rb = codec_.row_bytes();
  if (n > capacity_) {  // only the last capacity_ rows survive
    rows += (n - capacity_) * w;
    n = capacity_;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = (head_ + size_) % capacity_;
    codec_.encode(rows + i * w, 1, data_.data() + slot * rb);
    if (size_ < capacity_) ++size_;
    else head_ = (head_ + 1) % capacity_;
  }
}

void RingStore::read_all(float* out) const {
  const int64_t rb = codec_.row_bytes();
  const int64_t first = std::min(size_, capacity_ - head_);  // head_ .. end of buffer
  codec_.decode(data_.data() + head_ * rb, first, out);
  codec_.decode(data_.data(), size_ - first, out + first * codec_.width);
}

}  // namespace modelone
