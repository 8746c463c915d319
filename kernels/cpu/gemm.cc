// Matrix products through OpenBLAS (cblas_sgemm / cblas_dgemm), row-major.
// Letters: m, n, k of a GEMM; N rows (tokens), C input channels, OC output channels.
//
// Thread-count independence: a multi-threaded OpenBLAS call cuts C and k differently for each
// thread count (edge kernels at the cuts, remainders of k blocked differently), which changes the
// bits. So OpenBLAS is only ever called single-threaded, on panels of C fixed by the shape alone,
// and OpenMP spreads the panels over threads, one call per panel. The price is that each panel
// re-packs the operand it shares with the others (see gemm_bench.cc). Products with too small a C for
// panels but a long k are cut along k, summed in a fixed order.
#include "kernels/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <memory>

#include "kernels/cpu/bias.h"
#include "kernels/cpu/parallel_threshold.h"

namespace deepnet::cpu {
namespace {

void blas_gemm(CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m, int n, int k, float alpha,
               const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm(CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m, int n, int k, double alpha,
               const double* a, int lda, const double* b, int ldb, double beta, double* c,
               int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Panels are cut along the rows of C when there are enough rows and C is not four or more times
// wider than tall (each panel then re-packs B, which costs OpenBLAS less than re-packing A: 2-4%
// against 4-14% at the model's shapes; but in a C that wide, B is so much the larger operand that
// re-packing it costs more, up to 8% at N=512, FFN 4096), else along its columns. Their count is a
// power of two (an even share for 2, 4, 8... threads), each about kPanelWidth wide so that the
// re-packing stays small next to the panel's own product; but at least two panels from
// 2·kMinPanelWidth on, so that two threads share mid-size products.
constexpr int kPanelWidth = 512;
constexpr int kMinPanelWidth = 256;
constexpr int kMaxPanels = 64;
constexpr int kPanelAlignment = 64;  // whole register tiles in every panel but the last

struct Panels {
  bool along_rows;  // panels of rows of C (else of columns)
  int width;        // rows (or columns) per panel; the last may be narrower
  int count;
};

Panels choose_panels(int m, int n) {
  const bool along_rows = (m >= 2 * kMinPanelWidth && n < 4 * m) || m >= n;
  const int extent = along_rows ? m : n;
  int count = extent >= 2 * kMinPanelWidth ? 2 : 1;
  while (count < kMaxPanels && extent / (2 * count) >= kPanelWidth) count *= 2;
  int width = (extent + count - 1) / count;
  width = (width + kPanelAlignment - 1) / kPanelAlignment * kPanelAlignment;
  return {along_rows, width, (extent + width - 1) / width};
}

// A product too narrow for two panels of C but deep in k (a weight gradient: OC×C summed over
// many tokens) cuts k instead, into a power-of-two count of parts of at least kMinPartDepth, each
// doing at least kMinPartProducts multiply-adds so that the extra pass over C pays.
constexpr int kMinPartDepth = 512;
constexpr int64_t kMinPartProducts = int64_t{1} << 23;

int choose_depth_parts(int m, int n, int k, const Panels& panels) {
  if (panels.count > 1) return 1;
  int parts = 1;
  while (parts < kMaxPanels && k / (2 * parts) >= kMinPartDepth &&
         int64_t{m} * n * (k / (2 * parts)) >= kMinPartProducts) {
    parts *= 2;
  }
  return parts;
}

// Every panel is its own OpenBLAS call, whatever the thread count. Merging a thread's run of
// panels into one call (packing the shared operand once per thread) gives other bits on the
// Haswell/Zen kernels (OPENBLAS_CORETYPE=Haswell or Zen: 1024×512×256 differs between 1 and 2
// threads), so it is not done.

// A stride of 0 means packed; BLAS also wants every stride ≥ 1 even for empty matrices.
int row_stride(int requested, int stored_columns) {
  return std::max(1, requested != 0 ? requested : stored_columns);
}

}  // namespace

// C = alpha·op(A)·op(B) + beta·C as parts along k: part 0 goes straight into C, the others into
// scratch blocks that are then added to C in part order. Every element is the same sum whatever the
// thread count.
template <typename T>
void gemm_depth_parts(T* c, const T* a, const T* b, int m, int n, int k, int parts,
                      CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, T alpha, T beta, int lda,
                      int ldb, int ldc) {
  const int depth = (k + parts - 1) / parts;
  const int64_t block = int64_t{m} * n;
  // Uninitialised: each part's call overwrites its block (β = 0), and zeroing 1–3 blocks of C's
  // size first would cost as much as the sum below.
  const auto partial =
      std::make_unique_for_overwrite<T[]>(static_cast<size_t>((parts - 1) * block));
#pragma omp parallel num_threads(std::min(parts, omp_get_max_threads()))
  {
    omp_set_num_threads(1);  // this region's own setting: OpenBLAS below stays single-threaded
#pragma omp for schedule(static)
    for (int part = 0; part < parts; ++part) {
      const int begin = part * depth, part_depth = std::min(depth, k - begin);
      const T* a_part = trans_a == CblasTrans ? a + int64_t{begin} * lda : a + begin;
      const T* b_part = trans_b == CblasTrans ? b + begin : b + int64_t{begin} * ldb;
      if (part == 0) {
        blas_gemm(trans_a, trans_b, m, n, part_depth, alpha, a_part, lda, b_part, ldb, beta, c,
                  ldc);
      } else {
        blas_gemm(trans_a, trans_b, m, n, part_depth, alpha, a_part, lda, b_part, ldb, T{0},
                  partial.get() + (part - 1) * block, n);
      }
    }
  }
#pragma omp parallel for schedule(static) if (block * (parts - 1) >= kParallelMinElements)
  for (int row = 0; row < m; ++row) {
    T* c_row = c + int64_t{row} * ldc;
    for (int part = 1; part < parts; ++part) {
      const T* p_row = partial.get() + (part - 1) * block + int64_t{row} * n;
      for (int column = 0; column < n; ++column) c_row[column] += p_row[column];
    }
  }
}

template <typename T>
void gemm(T* c, const T* a, const T* b, int m, int n, int k, bool trans_a, bool trans_b, T alpha,
          T beta, int lda, int ldb, int ldc) {
  if (m <= 0 || n <= 0) return;
  const CBLAS_TRANSPOSE blas_trans_a = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE blas_trans_b = trans_b ? CblasTrans : CblasNoTrans;
  lda = row_stride(lda, trans_a ? m : k);
  ldb = row_stride(ldb, trans_b ? k : n);
  ldc = row_stride(ldc, n);
  const Panels panels = choose_panels(m, n);
  if (const int parts = choose_depth_parts(m, n, k, panels); parts > 1) {
    return gemm_depth_parts(c, a, b, m, n, k, parts, blas_trans_a, blas_trans_b, alpha, beta, lda,
                            ldb, ldc);
  }
  auto run_panel = [&](int panel) {
    const int begin = panel * panels.width;
    if (panels.along_rows) {  // rows begin.. of C and op(A)
      const int rows = std::min(begin + panels.width, m) - begin;
      const T* a_panel = trans_a ? a + begin : a + int64_t{begin} * lda;
      blas_gemm(blas_trans_a, blas_trans_b, rows, n, k, alpha, a_panel, lda, b, ldb, beta,
                c + int64_t{begin} * ldc, ldc);
    } else {  // columns begin.. of C and op(B)
      const int columns = std::min(begin + panels.width, n) - begin;
      const T* b_panel = trans_b ? b + int64_t{begin} * ldb : b + begin;
      blas_gemm(blas_trans_a, blas_trans_b, m, columns, k, alpha, a, lda, b_panel, ldb, beta,
                c + begin, ldc);
    }
  };
#pragma omp parallel num_threads(std::min(panels.count, omp_get_max_threads()))
  {
    omp_set_num_threads(1);  // this region's own setting: OpenBLAS below stays single-threaded
#pragma omp for schedule(static)
    for (int panel = 0; panel < panels.count; ++panel) run_panel(panel);
  }
}

template <typename T>
void gemm_strided_batched(T* c, const T* a, const T* b, int batch, int m, int n, int k,
                          bool trans_a, bool trans_b, T alpha, T beta, int64_t stride_a,
                          int64_t stride_b, int64_t stride_c) {
  // Many small products (attention heads): one per thread. Too few to keep the threads busy: each
  // product spreads its own panels instead. Either way every panel is the same OpenBLAS call.
  const bool one_per_thread = batch >= omp_get_max_threads();
#pragma omp parallel for schedule(static) if (one_per_thread)
  for (int i = 0; i < batch; ++i) {
    gemm(c + i * stride_c, a + i * stride_a, b + i * stride_b, m, n, k, trans_a, trans_b, alpha,
         beta);
  }
}

template <typename T>
void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) {
  T beta = 0;
  if (bias != nullptr) {
    // Seed every row with the bias and let the GEMM add onto it (beta = 1).
#pragma omp parallel for schedule(static) if (int64_t{N} * OC >= kParallelMinElements)
    for (int row = 0; row < N; ++row) std::copy(bias, bias + OC, out + int64_t{row} * OC);
    beta = 1;
  }
  gemm(out, inp, weight, N, OC, C, /*trans_a=*/false, /*trans_b=*/true, T{1}, beta);
}

template <typename T>
void linear_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC, bool add_to_dinp) {
  if (dinp != nullptr) {
    gemm(dinp, dout, weight, N, C, OC, /*trans_a=*/false, /*trans_b=*/false, T{1},
         add_to_dinp ? T{1} : T{0});
  }
  if (dweight != nullptr) {
    gemm(dweight, dout, inp, OC, C, N, /*trans_a=*/true, /*trans_b=*/false, T{1}, T{1});
  }
  if (dbias != nullptr) bias_add_backward(dbias, dout, N, OC);
}

#define DEEPNET_INSTANTIATE_GEMM(T)                                                                \
  template void gemm<T>(T*, const T*, const T*, int, int, int, bool, bool, T, T, int, int, int);   \
  template void gemm_strided_batched<T>(T*, const T*, const T*, int, int, int, int, bool, bool, T, \
                                        T, int64_t, int64_t, int64_t);                             \
  template void linear_forward<T>(T*, const T*, const T*, const T*, int, int, int);                \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int, bool);
DEEPNET_INSTANTIATE_GEMM(float)
DEEPNET_INSTANTIATE_GEMM(double)
#undef DEEPNET_INSTANTIATE_GEMM

}  // namespace deepnet::cpu
