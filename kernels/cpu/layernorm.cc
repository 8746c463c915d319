// LayerNorm over the last dimension, plain and fused with the DeepNorm residual z = α·x + g.
// Letters: N rows (tokens), C channels.
//
// Both ops share one forward and one backward; they differ only in how z is read (x itself, or
// α·x + g formed on the fly) and where dz goes (dx, or α·dz into dx and dz into dg).
#include "kernels/cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cpu/block_sums.h"

namespace deepnet::cpu {
namespace {

// dgamma and dbeta are sums over rows in fixed blocks (block_sums.h).

// Σ_c term(c), c < C, in kLanes partial sums added in a fixed order: several independent add
// chains (the sum vectorises and is not bound by add latency), and the same bits for any number
// of threads.
template <typename T, typename Term>
T lane_sum(int C, Term term) {
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= C; c += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += term(c + lane);
  }
  for (int lane = 0; c < C; ++c, ++lane) lanes[lane] += term(c);
  T sum = 0;
  for (int lane = 0; lane < kLanes; ++lane) sum += lanes[lane];
  return sum;
}

// Σ_c first(c) and Σ_c second(c) in one pass over the row, each as lane_sum does it.
template <typename T, typename First, typename Second>
std::pair<T, T> lane_sums(int C, First first, Second second) {
  constexpr int kLanes = 16;
  T first_lanes[kLanes] = {};
  T second_lanes[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= C; c += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) {
      first_lanes[lane] += first(c + lane);
      second_lanes[lane] += second(c + lane);
    }
  }
  for (int lane = 0; c < C; ++c, ++lane) {
    first_lanes[lane] += first(c);
    second_lanes[lane] += second(c);
  }
  std::pair<T, T> sums{0, 0};
  for (int lane = 0; lane < kLanes; ++lane) {
    sums.first += first_lanes[lane];
    sums.second += second_lanes[lane];
  }
  return sums;
}

// The per-row work sits in functions of its own: GCC does not vectorise `omp simd` loops written
// directly in the body of an `omp parallel for`. `omp simd` tells it that an output may alias an
// input at the same index (y = x, dx = dy), which it cannot prove safe by itself.

// One row: y = (z − mean)·rstd·gamma + beta with z_of(c) the row's z. The row is read three times
// (mean, variance, output) while it sits in L1; z is never stored. Returns {mean, rstd}.
template <typename T, typename ZOf>
std::pair<T, T> normalize_row(T* y_row, const T* gamma, const T* beta, int C, T eps, ZOf z_of) {
  const T mean = lane_sum<T>(C, z_of) / C;
  auto squared_deviation = [&](int c) {
    const T deviation = z_of(c) - mean;
    return deviation * deviation;
  };
  // Two passes (mean, then squared deviations): no cancellation when |mean| ≫ std.
  const T variance = lane_sum<T>(C, squared_deviation) / C;
  const T rstd = T{1} / std::sqrt(variance + eps);
#pragma omp simd
  for (int c = 0; c < C; ++c) y_row[c] = (z_of(c) - mean) * rstd * gamma[c] + beta[c];
  return {mean, rstd};
}

// y (N, C) = LN(z), where row_z(row) gives the z_of of that row.
template <typename T, typename RowZ>
void normalize_rows(T* y, T* mean, T* rstd, const T* gamma, const T* beta, int N, int C, T eps,
                    RowZ row_z) {
#pragma omp parallel for schedule(static) if (int64_t{N} * C >= kParallelMinElements)
  for (int row = 0; row < N; ++row) {
    std::tie(mean[row], rstd[row]) =
        normalize_row(y + int64_t{row} * C, gamma, beta, C, eps, row_z(row));
  }
}

// Backward of one row. With ẑ = (z − mean)·rstd and dn = dy·gamma:
//   dz = (dn − mean_c(dn) − ẑ·mean_c(dn·ẑ))·rstd; block_dgamma += dy·ẑ, block_dbeta += dy.
// dz_row may alias dy_row: each dy is read before its dz is written.
template <typename T, typename ZOf>
void normalize_row_backward(T* dz_row, T* block_dgamma, T* block_dbeta, const T* dy_row,
                            const T* gamma, T mean, T rstd, int C, ZOf z_of) {
  const auto [dn_sum, dn_zhat_sum] = lane_sums<T>(
      C, [&](int c) { return dy_row[c] * gamma[c]; },
      [&](int c) { return dy_row[c] * gamma[c] * (z_of(c) - mean) * rstd; });
  const T dn_mean = dn_sum / C;
  const T dn_zhat_mean = dn_zhat_sum / C;
#pragma omp simd
  for (int c = 0; c < C; ++c) {
    const T dy_c = dy_row[c];
    const T zhat = (z_of(c) - mean) * rstd;
    block_dgamma[c] += dy_c * zhat;
    block_dbeta[c] += dy_c;
    dz_row[c] = (dy_c * gamma[c] - dn_mean - zhat * dn_zhat_mean) * rstd;
  }
}

// Backward of normalize_rows: dz (N, C) overwritten (null: not kept), then finish_row(row, dz_row)
// for each row while it is still in L1; row_z(row) gives that row's z_of.
template <typename T, typename RowZ, typename FinishRow>
void normalize_rows_backward(T* dz, T* dgamma, T* dbeta, const T* dy, const T* gamma, const T* mean,
                             const T* rstd, int N, int C, RowZ row_z, FinishRow finish_row) {
  const int num_blocks = NumRowBlocks(N);
  if (num_blocks == 0) return;
  std::vector<T> partial_dgamma(int64_t{num_blocks} * C, T{0});  // (num_blocks, C)
  std::vector<T> partial_dbeta(int64_t{num_blocks} * C, T{0});   // (num_blocks, C)
#pragma omp parallel for schedule(static) if (int64_t{N} * C >= kParallelMinElements)
  for (int block = 0; block < num_blocks; ++block) {
    std::vector<T> discarded_dz(dz == nullptr ? C : 0);
    const int row_end = std::min(N, (block + 1) * kRowsPerBlock);
    for (int row = block * kRowsPerBlock; row < row_end; ++row) {
      T* dz_row = dz != nullptr ? dz + int64_t{row} * C : discarded_dz.data();
      normalize_row_backward(dz_row, partial_dgamma.data() + int64_t{block} * C,
                             partial_dbeta.data() + int64_t{block} * C, dy + int64_t{row} * C,
                             gamma, mean[row], rstd[row], C, row_z(row));
      finish_row(row, dz_row);
    }
  }
  add_block_sums(dgamma, partial_dgamma.data(), num_blocks, C);
  add_block_sums(dbeta, partial_dbeta.data(), num_blocks, C);
}

// Row readers: row_z(row) returns the z_of(c) of that row. Plain LayerNorm reads z = x.
template <typename T>
auto plain_rows(const T* x, int C) {
  return [x, C](int row) {
    const T* x_row = x + int64_t{row} * C;
    return [x_row](int c) { return x_row[c]; };
  };
}

// DeepNorm forms z = α·x + g on the fly.
template <typename T>
auto scaled_sum_rows(const T* x, const T* g, T alpha, int C) {
  return [x, g, alpha, C](int row) {
    const T* x_row = x + int64_t{row} * C;
    const T* g_row = g + int64_t{row} * C;
    return [x_row, g_row, alpha](int c) { return alpha * x_row[c] + g_row[c]; };
  };
}

}  // namespace

template <typename T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta, int N,
                       int C, T eps) {
  normalize_rows(y, mean, rstd, gamma, beta, N, C, eps, plain_rows(x, C));
}

template <typename T>
void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                        const T* mean, const T* rstd, int N, int C) {
  normalize_rows_backward(dx, dgamma, dbeta, dy, gamma, mean, rstd, N, C, plain_rows(x, C),
                          [](int, const T*) {});
}

template <typename T>
void deepnorm_forward(T* y, T* mean, T* rstd, const T* x, const T* g, const T* gamma, const T* beta,
                      T alpha, int N, int C, T eps) {
  normalize_rows(y, mean, rstd, gamma, beta, N, C, eps, scaled_sum_rows(x, g, alpha, C));
}

template <typename T>
void deepnorm_backward(T* dx, T* dg, T* dgamma, T* dbeta, const T* dy, const T* x, const T* g,
                       const T* gamma, const T* mean, const T* rstd, T alpha, int N, int C) {
  // dz lands in dg (dg = dz), or straight in dx when dg is not wanted; dx = α·dz follows per row.
  normalize_rows_backward(dg != nullptr ? dg : dx, dgamma, dbeta, dy, gamma, mean, rstd, N, C,
                          scaled_sum_rows(x, g, alpha, C),
                          [dx, alpha, C](int row, const T* dz_row) {
                            if (dx == nullptr) return;
                            T* dx_row = dx + int64_t{row} * C;  // may be dz_row itself
                            for (int c = 0; c < C; ++c) dx_row[c] = alpha * dz_row[c];
                          });
}

#define DEEPNET_INSTANTIATE_LAYERNORM(T)                                                        \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, T);    \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                      const T*, int, int);                                      \
  template void deepnorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, T, int, \
                                    int, T);                                                    \
  template void deepnorm_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,    \
                                     const T*, const T*, T, int, int);
DEEPNET_INSTANTIATE_LAYERNORM(float)
DEEPNET_INSTANTIATE_LAYERNORM(double)
#undef DEEPNET_INSTANTIATE_LAYERNORM

}  // namespace deepnet::cpu
