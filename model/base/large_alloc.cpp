// alloc_large: see large_alloc.h.
#include "model/base/large_alloc.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

#include "model/base/check.h"

namespace modelone {

std::shared_ptr<char> alloc_large(size_t bytes, const char* what) {
  constexpr size_t kHuge = size_t(2) << 20, kMin = size_t(4) << 20;
  const bool huge = bytes >= kMin;
  const size_t align = huge ? kHuge : 64;
  const size_t size = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  char* p = static_cast<char*>(std::aligned_alloc(align, size));
  MO_REQUIRE(p, "out of memory allocating ", what, " (", bytes, " bytes)");
  // Advice only: where the kernel has huge pages off, the buffer is ordinary memory.
  if (huge) (void)madvise(p, size, MADV_HUGEPAGE);
  return std::shared_ptr<char>(p, [](char* q) { std::free(q); });
}

}  // namespace modelone
