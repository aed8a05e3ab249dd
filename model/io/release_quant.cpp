#include "model/io/release_quant.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "model/base/check.h"

namespace modelone {

namespace {

Weight owned(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
  Weight w;
  w.name = std::move(name);
  w.dtype = dtype;
  w.shape = std::move(shape);
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  w.data = buf->data();
  w.owner = std::shared_ptr<const void>(buf, buf->data());
  return w;
}

uint8_t e2m1_nearest_code(float v) {  // nearest of 0, .5, 1, 1.5, 2, 3, 4, 6 (the lower on a tie)
  static constexpr float kMag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float a = std::fabs(v);
  uint8_t best = 0;
  for (uint8_t i = 1; i < 8; ++i)
    if (std::fabs(a - kMag[i]) < std::fabs(a - kMag[best])) best = i;
  return uint8_t(best | (v < 0 && best ? 8 : 0));
}

}  // namespace

Weight quantize_weight(std::string name, DType dtype, int64_t rows, int64_t cols,
                       const std::vector<float>& values, int64_t block) {
  MO_CHECK(int64_t(values.size()) == rows * cols, name);
  if (dtype == DType::F8_E4M3) {
    const int64_t sr = (rows + block - 1) / block, sc = (cols + block - 1) / block;
    std::vector<uint8_t> codes(size_t(rows * cols)), scales(size_t(sr * sc));
    for (int64_t bi = 0; bi < sr; ++bi)
      for (int64_t bj = 0; bj < sc; ++bj) {
        const int64_t r1 = std::min(rows, (bi + 1) * block), c1 = std::min(cols, (bj + 1) * block);
        float amax = 0.f;
        for (int64_t r = bi * block; r < r1; ++r)
          for (int64_t c = bj * block; c < c1; ++c) amax = std::max(amax, std::fabs(values[size_t(r * cols + c)]));
        const uint8_t e = f32_to_ue8m0_ceil(amax / 448.f);
        scales[size_t(bi * sc + bj)] = e;
        const float inv = 1.f / ue8m0_to_f32(e);
        for (int64_t r = bi * block; r < r1; ++r)
          for (int64_t c = bj * block; c < c1; ++c)
            codes[size_t(r * cols + c)] = f32_to_e4m3(values[size_t(r * cols + c)] * inv);
      }
    Weight w = owned(name, dtype, {rows, cols}, std::move(codes));
    w.scale = std::make_shared<Weight>(owned(name + ".scale", DType::F8_E8M0, {sr, sc}, std::move(scales)));
    w.block_rows = w.block_cols = block;
    return w;
  }
  MO_CHECK(dtype == DType::F4_E2M1 && cols % 32 == 0, name, ": quantize to ", dtype_name(dtype));
  std::vector<uint8_t> packed(size_t(rows * cols / 2)), scales(size_t(rows * cols / 32));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 32; ++g) {
      const float* v = values.data() + r * cols + g * 32;
      float amax = 0.f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
      const uint8_t e = f32_to_ue8m0_ceil(amax / 6.f);
      scales[size_t(r * (cols / 32) + g)] = e;
      const float inv = 1.f / ue8m0_to_f32(e);
      uint8_t* p = packed.data() + (r * cols + g * 32) / 2;
      for (int i = 0; i < 32; i += 2) p[i / 2] = uint8_t(e2m1_nearest_code(v[i] * inv) | (e2m1_nearest_code(v[i + 1] * inv) << 4));
    }
  Weight w = owned(name, dtype, {rows, cols}, std::move(packed));
  w.scale = std::make_shared<Weight>(owned(name + ".scale", DType::F8_E8M0, {rows, cols / 32}, std::move(scales)));
  w.block_rows = 1;
  w.block_cols = 32;
  return w;
}

}  // namespace modelone
