// Bias add over rows: y (N, C) = x (N, C) + bias (C), and its backward dbias (C) += Σ_n dy
// (a sum over rows in fixed blocks, block_sums.h).
#include "kernels/cpu/bias.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/block_sums.h"

namespace deepnet::cpu {

template <typename T>
void bias_add_forward(T* y, const T* x, const T* bias, int N, int C) {
#pragma omp parallel for schedule(static) if (int64_t{N} * C >= kParallelMinElements)
  for (int row = 0; row < N; ++row) {
    const T* x_row = x + int64_t{row} * C;
    T* y_row = y + int64_t{row} * C;
    for (int c = 0; c < C; ++c) y_row[c] = x_row[c] + bias[c];
  }
}

template <typename T>
void bias_add_backward(T* dbias, const T* dy, int N, int C) {
  const int num_blocks = NumRowBlocks(N);
  if (num_blocks == 0) return;
  std::vector<T> partial(int64_t{num_blocks} * C, T{0});  // (num_blocks, C)
#pragma omp parallel for schedule(static) if (int64_t{N} * C >= kParallelMinElements)
  for (int block = 0; block < num_blocks; ++block) {
    T* block_sum = partial.data() + int64_t{block} * C;
    const int row_end = std::min(N, (block + 1) * kRowsPerBlock);
    for (int row = block * kRowsPerBlock; row < row_end; ++row) {
      const T* dy_row = dy + int64_t{row} * C;
      for (int c = 0; c < C; ++c) block_sum[c] += dy_row[c];
    }
  }
  add_block_sums(dbias, partial.data(), num_blocks, C);
}

template void bias_add_forward<float>(float*, const float*, const float*, int, int);
template void bias_add_forward<double>(double*, const double*, const double*, int, int);
template void bias_add_backward<float>(float*, const float*, int, int);
template void bias_add_backward<double>(double*, const double*, int, int);

}  // namespace deepnet::cpu
