// What the CPU we run on can do, read at run time (the build may be portable, and the machines a
// job lands on differ), so kernels are chosen here and not by compile flags alone.
#pragma once
#include <string>

namespace modelone {

struct CpuFeatures {
  bool avx512 = false;       // AVX-512 F + BW + VL, with the OS saving the zmm state
  bool avx512_bf16 = false;  // VDPBF16PS / VCVTNEPS2BF16
  bool amx_bf16 = false;     // AMX tiles with bf16
  bool bf16() const { return (avx512 && avx512_bf16) || amx_bf16; }
  std::string str() const;   // "avx512 avx512_bf16" or "none"
};

// Detected once. MODELONE_CPU_FEATURES=none (or a subset such as "avx512") masks what is reported,
// so the fallback paths can be run and tested on a CPU that has more.
const CpuFeatures& cpu_features();
// Tests: report f instead (only fewer features than the CPU has are safe); returns the previous.
CpuFeatures override_cpu_features(const CpuFeatures& f);

}  // namespace modelone
