// Why the allocator is set. A step's buffers (activations, scores, exchange rows: up to hundreds
// of MiB in a long prefill) are std::vectors freed at the step's end. glibc gives a buffer past
// its mmap threshold (dynamic, at most 32 MiB) straight back to the kernel, so the next step
// faults it in again 4 KiB at a time: a V4-Flash-cut `run` of 2048 tokens took 316k page faults
// (about 6 us each on a VM). Two settings: once the weights are loaded, freed buffers stay in the
// heap (mallopt; set after loading, so the loader's temporaries still go back), and the heap and
// large blocks are backed by transparent huge pages where the kernel grants them on request
// (hugetlb=1: madvise). The same run then takes 20k faults and its prefill is ~20% faster at the
// same peak memory (docs/architecture.md). glibc reads GLIBC_TUNABLES once, at start-up: hence the
// re-exec. MODELONE_MALLOC=system turns both off.
#include "dist/malloc_policy.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>

namespace modelone {

namespace {
bool kept = false;  // whether glibc took keep_freed_buffers' settings (a sanitizer's allocator does not)

bool system_malloc() {
  const char* choice = std::getenv("MODELONE_MALLOC");
  return choice != nullptr && std::string(choice) == "system";
}
}  // namespace

void reexec_with_malloc_tunables(char** argv) {
  if (system_malloc()) return;
  const char* have = std::getenv("GLIBC_TUNABLES");
  const bool had = have != nullptr;
  const std::string before = had ? have : "";
  std::string tunables = before;
  // Set already: by the user (whose value wins), or this is the re-executed program.
  if (tunables.find("glibc.malloc.hugetlb=") != std::string::npos) return;
  tunables += std::string(tunables.empty() ? "" : ":") + "glibc.malloc.hugetlb=1";
  if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): the program runs on with glibc's defaults.
  if (had) setenv("GLIBC_TUNABLES", before.c_str(), 1);
  else unsetenv("GLIBC_TUNABLES");
}

void keep_freed_buffers() {
  if (system_malloc()) return;
  kept = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
}

std::string malloc_settings() {
  const char* t = std::getenv("GLIBC_TUNABLES");
  std::string s = t != nullptr && *t ? std::string("GLIBC_TUNABLES=") + t : "";
  if (kept) s += std::string(s.empty() ? "" : ", ") + "freed buffers kept";
  return s.empty() ? "glibc defaults" : s;
}

}  // namespace modelone
