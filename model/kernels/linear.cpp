#include "model/kernels/linear.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "model/base/check.h"
#include "model/base/cpu_features.h"
#include "model/kernels/linear_gemv_bf16.h"
#include "model/kernels/omp_threads.h"
#include "model/kernels/panel_weights.h"

namespace modelone {

void set_compute_threads(int n) {
  // All parallelism is ours (OpenMP); OpenBLAS runs single-threaded inside each of our threads,
  // so calls from parallel regions never fight over its pool.
  openblas_set_num_threads(1);
  if (n > 0) omp_set_num_threads(n);
}

namespace {
// C[M, N] (+)= A @ op(B) through OpenBLAS; trans_b picks B^T (B stored [N, K]) or B ([K, N]).
void sgemm(bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc, float beta) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty product: C = beta * C (here beta is 0 or 1)
    if (beta == 0.f)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), 1.f, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
}  // namespace

void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta) {
  sgemm(true, M, N, K, A, lda, B, ldb, C, ldc, beta);
}

void sgemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, float beta) {
  sgemm(false, M, N, K, A, lda, B, ldb, C, ldc, beta);
}

namespace {

// Decode-sized products: each thread widens a few weight rows into L1 and dots them with all T
// rows of x, so the weight streams from memory once at its stored width.
void gemv_widen(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
                float* y, int64_t ldy, bool accumulate) {
  const int64_t K = w.cols();
  constexpr int64_t kRowsPerStep = 4;
  parallel_for((N + kRowsPerStep - 1) / kRowsPerStep, threads_for_product(T, N, K), [&](int64_t b) {
    // Per thread and kept between calls: a fresh buffer each call would be page-faulted in anew.
    static thread_local std::vector<float> buf;
    buf.resize(size_t(kRowsPerStep * K));
    const int64_t n0 = b * kRowsPerStep, nr = std::min(kRowsPerStep, N - n0);
    w.rows_f32(r0 + n0, nr, buf.data());
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * ldx;
      for (int64_t r = 0; r < nr; ++r) {
        const float* wr = buf.data() + r * K;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < K; ++k) acc += xt[k] * wr[k];
        float& out = y[t * ldy + n0 + r];
        out = accumulate ? out + acc : acc;
      }
    }
  });
}

}  // namespace

namespace {
Compute g_compute = Compute::F32;
}

void set_compute(Compute c) {
  MO_REQUIRE(c == Compute::F32 || cpu_features().bf16(),
             "--compute bf16 needs a CPU with AVX512-BF16 or AMX; this one has: ",
             cpu_features().str(), " (use --compute fp32)");
  g_compute = c;
}
Compute compute_mode() { return g_compute; }
Compute default_compute() { return cpu_features().bf16() ? Compute::BF16 : Compute::F32; }
const char* compute_name(Compute c) { return c == Compute::BF16 ? "bf16" : "fp32"; }

void check_linear(const Weight& w, int64_t r0, int64_t N) {
  MO_CHECK(!w.empty(), "linear on an absent weight");
  MO_CHECK(r0 >= 0 && r0 + N <= w.rows(), w.name, ": rows ", r0, "+", N, " of ", w.rows());
}

void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
            float* y, int64_t ldy, bool accumulate) {
  if (g_compute == Compute::BF16) linear_bf16(x, T, ldx, w, r0, N, y, ldy, accumulate);
  else linear_fp32(x, T, ldx, w, r0, N, y, ldy, accumulate);
}

void linear_fp32(const float* x, int64_t T, int64_t ldx, const Weight& w, int64_t r0, int64_t N,
                 float* y, int64_t ldy, bool accumulate) {
  check_linear(w, r0, N);
  if (T == 0 || N == 0) return;
  const int64_t K = w.cols();
  const float beta = accumulate ? 1.f : 0.f;
  const bool f32 = w.dtype == DType::F32 && !w.scale;
  if (!f32 && T <= kGemvMaxRows) {
    if (w.dtype == DType::BF16_P64) return linear_panels_f32(x, T, ldx, w, r0, N, y, ldy, accumulate);
    if (w.dtype == DType::BF16 && !w.scale &&
        gemv_bf16(x, T, ldx, static_cast<const uint16_t*>(w.data) + r0 * K, K, N, y, ldy,
                  accumulate))
      return;
    gemv_widen(x, T, ldx, w, r0, N, y, ldy, accumulate);
    return;
  }
  // Work items are (row block of x) x (tile of weight rows). sgemm re-reads all of x for every
  // tile, so tiles grow with T: ~2 MiB fp32 for small batches (the widened tile stays in
  // cache), up to ~16 MiB for large ones, where re-streaming x would dominate instead.
  const int nt = threads_for_product(T, N, K);
  const int64_t tile_floats = T <= 64 ? (int64_t(1) << 19) : (int64_t(1) << 22);
  int64_t tile = std::clamp<int64_t>(tile_floats / std::max<int64_t>(K, 1), 16, 4096);
  tile = std::min(tile, std::max<int64_t>(16, (N + nt - 1) / nt));
  const int64_t n_tiles = (N + tile - 1) / tile;
  const int64_t t_blocks = n_tiles >= nt ? 1 : std::min<int64_t>((nt + n_tiles - 1) / n_tiles,
                                                                 std::max<int64_t>(1, T / 64));
  const int64_t t_block = (T + t_blocks - 1) / t_blocks;
  parallel_dynamic(n_tiles * t_blocks, nt, [&](int64_t item) {
    static thread_local std::vector<float> buf;  // per thread, kept between calls (see above)
    const int64_t i = item / t_blocks, b = item % t_blocks;
    const int64_t n0 = i * tile, nn = std::min(tile, N - n0);
    const int64_t t0 = b * t_block, tn = std::min(t_block, T - t0);
    if (tn <= 0) return;
    const float* wt;
    if (f32) {
      wt = static_cast<const float*>(w.data) + (r0 + n0) * K;
    } else {
      buf.resize(size_t(nn * K));
      w.rows_f32(r0 + n0, nn, buf.data());
      wt = buf.data();
    }
    sgemm_nt(tn, nn, K, x + t0 * ldx, ldx, wt, K, y + t0 * ldy + n0, ldy, beta);
  });
}

}  // namespace modelone
