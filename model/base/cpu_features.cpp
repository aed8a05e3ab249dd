#include "model/base/cpu_features.h"

#include <cpuid.h>

#include <cstdlib>
#include <sstream>

namespace modelone {

namespace {

uint64_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return f;  // no OSXSAVE
  const uint64_t x = xcr0();
  const bool zmm_os = (x & 0xe6) == 0xe6;       // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
  const bool amx_os = (x & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx512 = zmm_os && (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31));
  f.amx_bf16 = amx_os && (d & (1u << 22)) && (d & (1u << 24));
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512_bf16 = f.avx512 && (a & (1u << 5));
  return f;
}

CpuFeatures masked(CpuFeatures f) {
  const char* env = std::getenv("MODELONE_CPU_FEATURES");
  if (!env) return f;
  const std::string keep = std::string(" ") + env + " ";
  auto has = [&](const char* name) { return keep.find(std::string(" ") + name + " ") != std::string::npos; };
  f.avx512 = f.avx512 && has("avx512");
  f.avx512_bf16 = f.avx512_bf16 && has("avx512_bf16");
  f.amx_bf16 = f.amx_bf16 && has("amx_bf16");
  return f;
}

}  // namespace

std::string CpuFeatures::str() const {
  std::ostringstream s;
  if (avx512) s << "avx512 ";
  if (avx512_bf16) s << "avx512_bf16 ";
  if (amx_bf16) s << "amx_bf16 ";
  std::string r = s.str();
  return r.empty() ? "none" : r.substr(0, r.size() - 1);
}

namespace {
CpuFeatures& state() {
  static CpuFeatures f = masked(detect());
  return f;
}
}  // namespace

const CpuFeatures& cpu_features() { return state(); }

CpuFeatures override_cpu_features(const CpuFeatures& f) {
  const CpuFeatures old = state();
  state() = f;
  return old;
}

}  // namespace modelone
