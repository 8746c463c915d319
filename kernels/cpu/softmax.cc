// Row softmax: y (N, C) = softmax(x) along C, and its backward.
// Letters: N rows, C entries per row.
#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/parallel_threshold.h"

namespace deepnet::cpu {
namespace {

template <typename T>
void softmax_row(T* y_row, const T* x_row, int C) {
  const T row_max = *std::max_element(x_row, x_row + C);
  if (row_max == -std::numeric_limits<T>::infinity()) {
    // Every entry masked out: no distribution exists; give zeros rather than NaN.
    std::fill(y_row, y_row + C, T{0});
    return;
  }
  T sum = 0;
  for (int c = 0; c < C; ++c) {
    y_row[c] = std::exp(x_row[c] - row_max);  // shifted by the max: no overflow
    sum += y_row[c];
  }
  const T inverse_sum = T{1} / sum;
  for (int c = 0; c < C; ++c) y_row[c] *= inverse_sum;
}

// dx may alias dy: the dot product reads all of dy before any dx is written.
template <typename T>
void softmax_backward_row(T* dx_row, const T* dy_row, const T* y_row, int C) {
  T dot = 0;
  for (int c = 0; c < C; ++c) dot += dy_row[c] * y_row[c];
  for (int c = 0; c < C; ++c) dx_row[c] = y_row[c] * (dy_row[c] - dot);
}

}  // namespace

template <typename T>
void softmax_forward(T* y, const T* x, int N, int C) {
#pragma omp parallel for schedule(static) if (int64_t{N} * C >= kParallelMinElements)
  for (int row = 0; row < N; ++row) {
    softmax_row(y + int64_t{row} * C, x + int64_t{row} * C, C);
  }
}

template <typename T>
void softmax_backward(T* dx, const T* dy, const T* y, int N, int C) {
#pragma omp parallel for schedule(static) if (int64_t{N} * C >= kParallelMinElements)
  for (int row = 0; row < N; ++row) {
    const int64_t base = int64_t{row} * C;
    softmax_backward_row(dx + base, dy + base, y + base, C);
  }
}

template void softmax_forward<float>(float*, const float*, int, int);
template void softmax_forward<double>(double*, const double*, int, int);
template void softmax_backward<float>(float*, const float*, const float*, int, int);
template void softmax_backward<double>(double*, const double*, const double*, int, int);

}  // namespace deepnet::cpu
