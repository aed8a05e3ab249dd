// The weight products of both compute paths on V4-Flash projection shapes, for decode-sized and
// prefill-sized batches, against OpenBLAS sgemm on the same weights already in fp32 (baseline),
// with the machine's read bandwidth measured in the same run for the decode sizes.
//   fp32 path: linear_fp32 (weights widened to fp32 a tile at a time, OpenBLAS / our GEMV)
//   bf16 path: linear_bf16 (x to bf16, weights decoded to bf16, oneDNN / our VDPBF16PS GEMV)
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "model/base/cpu_features.h"
#include "model/kernels/linear.h"
#include "model/kernels/panel_weights.h"
#include "model/io/release_quant.h"

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

Weight stored(const std::string& name, const std::string& as, int64_t N, int64_t K,
              const std::vector<float>& v) {
  if (as == "fp8") return quantize_weight(name, DType::F8_E4M3, N, K, v, 128);
  if (as == "fp4") return quantize_weight(name, DType::F4_E2M1, N, K, v);
  Weight w = make_weight(name, DType::BF16, {N, K}, v);
  if (as == "bf16p") MO_CHECK(pack_weight_panels(w), name, ": not packable into panels");
  return w;
}
}  // namespace

int gemm_bench(const GemmBenchOptions& o) {
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  set_compute_threads(threads);
  const bool bf16 = cpu_features().bf16();
  const double bw = read_bandwidth_gbps(threads);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (const Shape& s : kShapes) {
    if (!o.shape.empty() && o.shape != s.name) continue;
    // Enough copies of the weight that the timed loop streams it from memory, as a model larger
    // than the caches does (a single small weight would sit in L3 between repetitions).
    const int64_t fp32_bytes = s.N * s.K * 4;
    const int copies = int(std::max<int64_t>(2, (int64_t(512) << 20) / fp32_bytes));
    std::vector<Weight> wq;
    std::vector<std::vector<float>> wf;
    for (int c = 0; c < copies; ++c) {
      std::vector<float> v(static_cast<size_t>(s.N * s.K));
      for (auto& x : v) x = u(rng);
      wq.push_back(stored(s.name, o.weights, s.N, s.K, v));
      wf.emplace_back(wq.back().to_f32());  // the baseline multiplies the same values
    }
    const double stored_bytes = double(wq[0].nbytes() + (wq[0].scale ? wq[0].scale->nbytes() : 0));
    for (int64_t T : o.tokens) {
      std::vector<float> x(static_cast<size_t>(T * s.K)), y(static_cast<size_t>(T * s.N));
      for (auto& v : x) v = u(rng);
      int next = 0;
      auto time_path = [&](auto&& fn) {
        return median_seconds([&] {
          fn(wq[size_t(next)]);
          next = (next + 1) % copies;
        });
      };
      const double f32 = time_path([&](const Weight& w) { linear_fp32(x.data(), T, s.K, w, 0, s.N, y.data(), s.N); });
      const double b16 = bf16 ? time_path([&](const Weight& w) {
        linear_bf16(x.data(), T, s.K, w, 0, s.N, y.data(), s.N);
      }) : 0.0;
      // Baseline: OpenBLAS with all the threads on fp32 weights.
      openblas_set_num_threads(threads);
      const double base = median_seconds([&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(s.N), int(s.K), 1.f,
                    x.data(), int(s.K), wf[size_t(next)].data(), int(s.K), 0.f, y.data(), int(s.N));
        next = (next + 1) % copies;
      });
      openblas_set_num_threads(1);
      const double flop = 2.0 * double(T) * double(s.N) * double(s.K);
      Line l("gemm");
      l.add("shape", std::string(s.name)).add("weights", o.weights).add("T", T).add("N", s.N)
          .add("K", s.K).add("threads", int64_t(threads))
          .add("sgemm_fp32_gflops", flop / base / 1e9)
          .add("fp32_path_gflops", flop / f32 / 1e9)
          .add("fp32_path_vs_sgemm", base / f32, 3);
      if (bf16)
        l.add("bf16_gflops", flop / b16 / 1e9)
            .add("ratio_vs_sgemm", base / b16, 3)
            .add("bf16_vs_fp32_path", f32 / b16, 3);
      if (T <= kGemvMaxRows) {  // decode sizes stream the weight: its rate against the machine's
        const double best = bf16 ? std::min(b16, f32) : f32;
        l.add("weight_gbps", stored_bytes / best / 1e9).add("read_gbps", bw)
            .add("bandwidth_fraction", stored_bytes / best / 1e9 / bw, 3);
      }
      l.print();
    }
  }
  return 0;
}

}  // namespace modelone::bench
