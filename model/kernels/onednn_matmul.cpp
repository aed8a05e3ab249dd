#include "model/kernels/onednn_matmul.h"

#include <dnnl.hpp>
#include <omp.h>

#include <map>
#include <mutex>
#include <tuple>

#include "model/kernels/bf16_decode.h"
#include "model/base/check.h"

namespace modelone {

namespace {

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
using dt = dnnl::memory::data_type;

struct Cache {
  std::mutex mu;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  // Keyed by the exact shape: expert GEMMs see many row counts, and oneDNN's kernels for fixed
  // shapes beat its runtime-shape ones by up to 1.3x at M = 16-64 (measured). Each primitive is a
  // few KiB of JIT code; past kMax the map is cleared and refilled.
  std::map<Key, dnnl::matmul> prims;
  int64_t made = 0;
  static constexpr size_t kMax = 4096;
};

Cache& cache() {
  static Cache c;
  return c;
}

dnnl::matmul primitive(Cache& c, const Key& k) {
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.prims.find(k);
  if (it != c.prims.end()) return it->second;
  const auto [M, N, K, lda, ldb, ldc, acc] = k;
  const dnnl::memory::desc a({M, K}, dt::bf16, dnnl::memory::dims{lda, 1});
  const dnnl::memory::desc b({K, N}, dt::bf16, dnnl::memory::dims{1, ldb});  // B[N, K] read as B^T
  const dnnl::memory::desc cd({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  if (acc) {
    dnnl::post_ops po;
    po.append_sum(1.f);
    attr.set_post_ops(po);
  }
  dnnl::matmul p(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, cd), attr, c.eng));
  if (c.prims.size() >= Cache::kMax) c.prims.clear();
  c.prims.emplace(k, p);
  ++c.made;
  return p;
}

}  // namespace

void matmul_bf16_nt(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                    const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  MO_CHECK(K > 0, "matmul_bf16_nt with K = 0");
  // Inside one of our parallel loops oneDNN's kernels would split their work for a team they do
  // not have (results came out wrong with 2 threads): the calling thread does it alone.
  if (omp_in_parallel()) {
    gemm_bf16_nt_here(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
  Cache& c = cache();
  try {
    const Key k{M, N, K, lda, ldb, ldc, accumulate};
    dnnl::matmul p = primitive(c, k);
    const dnnl::memory::desc a({M, K}, dt::bf16, dnnl::memory::dims{lda, 1});
    const dnnl::memory::desc b({K, N}, dt::bf16, dnnl::memory::dims{1, ldb});
    const dnnl::memory::desc cd({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
    dnnl::memory am(a, c.eng, const_cast<uint16_t*>(A)), bm(b, c.eng, const_cast<uint16_t*>(B)),
        cm(cd, c.eng, C);
    thread_local dnnl::stream s(c.eng);
    p.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
  } catch (const dnnl::error& e) {
    MO_CHECK(false, "oneDNN matmul [", M, ", ", K, "] x [", K, ", ", N, "]: ", e.what());
  }
}

int64_t matmul_bf16_primitives() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.made;
}

}  // namespace modelone
