// GEMM throughput of the bf16-weight path (weights stay 2 bytes a parameter and are widened a
// tile at a time) against OpenBLAS sgemm on the same weights already in fp32, on V4-Flash
// projection shapes, for decode-sized and prefill-sized batches.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <random>

#include "bench/bench_command.h"
#include "bench/bench_util.h"
#include "model/gemm.h"

namespace modelone::bench {

namespace {
struct Shape {
  const char* name;
  int64_t N, K;
};
// V4-Flash projections (rows x cols of the weight).
const Shape kShapes[] = {{"wq_a", 1024, 4096},      {"wq_b", 32768, 1024},
                         {"wkv", 512, 4096},        {"wo_a_group", 1024, 4096},
                         {"wo_b", 4096, 8192},      {"expert_w1", 2048, 4096},
                         {"expert_w2", 4096, 2048}};
}  // namespace

int gemm_bench(const GemmBenchOptions& o) {
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  set_compute_threads(threads);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (const Shape& s : kShapes) {
    if (!o.shape.empty() && o.shape != s.name) continue;
    // Enough copies of the weight that the timed loop streams it from memory, as a model larger
    // than the caches does (a single small weight would sit in L3 between repetitions).
    const int64_t bytes = s.N * s.K * 2;
    const int copies = int(std::max<int64_t>(1, (int64_t(256) << 20) / bytes));
    std::vector<Weight> wb;
    std::vector<std::vector<float>> wf;
    for (int c = 0; c < copies; ++c) {
      wf.emplace_back(static_cast<size_t>(s.N * s.K));
      for (auto& v : wf.back()) v = round_bf16(u(rng));
      wb.push_back(make_weight(s.name, DType::BF16, {s.N, s.K}, wf.back()));
    }
    for (int64_t T : o.tokens) {
      std::vector<float> x(static_cast<size_t>(T * s.K)), y(static_cast<size_t>(T * s.N));
      for (auto& v : x) v = u(rng);
      int next = 0;
      const double ours = median_seconds([&] {
        linear(x.data(), T, wb[size_t(next)], y.data());
        next = (next + 1) % copies;
      });
      // Baseline: OpenBLAS with all the threads on fp32 weights (twice the bytes).
      openblas_set_num_threads(threads);
      const double base = median_seconds([&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(s.N), int(s.K), 1.f,
                    x.data(), int(s.K), wf[size_t(next)].data(), int(s.K), 0.f, y.data(), int(s.N));
        next = (next + 1) % copies;
      });
      openblas_set_num_threads(1);
      const double flop = 2.0 * double(T) * double(s.N) * double(s.K);
      Line("gemm")
          .add("shape", std::string(s.name))
          .add("T", T)
          .add("N", s.N)
          .add("K", s.K)
          .add("threads", int64_t(threads))
          .add("bf16_gflops", flop / ours / 1e9)
          .add("sgemm_fp32_gflops", flop / base / 1e9)
          .add("ratio_vs_sgemm", base / ours, 3)
          .add("bf16_weight_gbps", double(bytes) / ours / 1e9)
          .print(o.json);
    }
  }
  return 0;
}

}  // namespace modelone::bench
