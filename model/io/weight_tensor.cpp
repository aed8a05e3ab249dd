#include "model/io/weight_tensor.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/base/check.h"

namespace modelone {

int64_t Weight::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int64_t Weight::cols() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

void panel_rows_bf16(const Weight& w, int64_t r0, int64_t n, uint16_t* out) {
  const int64_t kp = w.cols() / 2;
  MO_CHECK(w.dtype == DType::BF16_P64 && r0 >= 0 && r0 + n <= w.rows(), w.name, " rows ", r0, "+", n);
  for (int64_t r = r0; r < r0 + n; ++r) {
    const uint32_t* panel = weight_panel(w, r / kPanelRows) + r % kPanelRows;
    uint16_t* o = out + (r - r0) * 2 * kp;
    for (int64_t p = 0; p < kp; ++p) {
      const uint32_t v = panel[p * kPanelRows];
      o[2 * p] = uint16_t(v & 0xffff);
      o[2 * p + 1] = uint16_t(v >> 16);
    }
  }
}

void Weight::rows_f32(int64_t r0, int64_t n, float* out) const {
  const int64_t c = cols();
  MO_CHECK(r0 >= 0 && r0 + n <= std::max<int64_t>(rows(), 1), name, " rows ", r0, "+", n);
  if (dtype == DType::BF16_P64) {  // back to bf16 rows, then widened
    static thread_local std::vector<uint16_t> h;
    h.resize(size_t(n * c));
    panel_rows_bf16(*this, r0, n, h.data());
    widen_to_f32(DType::BF16, h.data(), out, h.size());
    return;
  }
  const char* base = static_cast<const char*>(data) + dtype_bytes(dtype, size_t(r0 * c));
  widen_to_f32(dtype, base, out, size_t(n * c));
  if (!scale) return;
  // Block-scaled FP8: multiply each (row, column block) by its scale.
  const int64_t sc = scale->cols();
  for (int64_t r = 0; r < n; ++r) {
    const int64_t br = (r0 + r) / block_rows;
    float* row = out + r * c;
    for (int64_t cb = 0; cb * block_cols < c; ++cb) {
      const float s = scale->at_f32(br * sc + cb);
      const int64_t end = std::min(c, (cb + 1) * block_cols);
      for (int64_t j = cb * block_cols; j < end; ++j) row[j] *= s;
    }
  }
}

std::vector<float> Weight::to_f32() const {
  std::vector<float> v(static_cast<size_t>(numel()));
  if (shape.size() <= 1) {
    widen_to_f32(dtype, data, v.data(), v.size());
    if (scale) rows_f32(0, 1, v.data());
  } else {
    rows_f32(0, rows(), v.data());
  }
  return v;
}

float Weight::at_f32(int64_t i) const {
  if (dtype == DType::BF16_P64) {  // element k of row r: a half of pair k / 2 in r's panel
    const int64_t r = i / cols(), k = i % cols();
    const uint32_t v = weight_panel(*this, r / kPanelRows)[(k / 2) * kPanelRows + r % kPanelRows];
    return bf16_to_f32(uint16_t(k % 2 ? v >> 16 : v & 0xffff));
  }
  if (dtype == DType::F4_E2M1)
    return e2m1_to_f32((static_cast<const uint8_t*>(data)[i / 2] >> ((i & 1) * 4)) & 0xf);
  float f;
  widen_to_f32(dtype, static_cast<const char*>(data) + size_t(i) * dtype_size(dtype), &f, 1);
  return f;
}

int64_t Weight::at_i64(int64_t i) const {
  // memcpy: a safetensors tensor's data need not be aligned to its element size.
  if (dtype == DType::I64) {
    int64_t v;
    std::memcpy(&v, static_cast<const char*>(data) + i * 8, 8);
    return v;
  }
  if (dtype == DType::I32) {
    int32_t v;
    std::memcpy(&v, static_cast<const char*>(data) + i * 4, 4);
    return v;
  }
  return int64_t(at_f32(i));
}

Weight make_weight(std::string name, DType dtype, std::vector<int64_t> shape,
                   const std::vector<float>& values) {
  Weight w;
  w.name = std::move(name);
  w.dtype = dtype;
  w.shape = std::move(shape);
  MO_CHECK(int64_t(values.size()) == w.numel(), w.name);
  auto buf = std::shared_ptr<char[]>(new char[w.nbytes() + 1]);
  if (dtype == DType::I64) {
    auto* d = reinterpret_cast<int64_t*>(buf.get());
    for (size_t i = 0; i < values.size(); ++i) d[i] = int64_t(values[i]);
  } else {
    narrow_from_f32(dtype, values.data(), buf.get(), values.size());
  }
  w.data = buf.get();
  w.owner = std::shared_ptr<const void>(buf, buf.get());
  return w;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace modelone
