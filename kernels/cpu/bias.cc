// Bias add over rows: y (N, C) = x (N, C) + bias (C), and its backward dbias (C) += Σ_n dy.
#include "kernels/cpu/bias.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace deepnet::cpu {
namespace {

// dbias is a sum over rows. For results independent of the thread count, rows are cut into fixed
// blocks; each block sums its rows in order, then the blocks are summed in block order.
constexpr int kRowsPerBlock = 32;
constexpr int kColumnsPerTile = 64;
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMinElements = 1 << 15;

// dst (C) += Σ_b partial (num_blocks, C)[b], blocks summed in order; partial is clobbered.
template <typename T>
void add_block_sums(T* dst, T* partial, int num_blocks, int C) {
#pragma omp parallel for schedule(static) if (int64_t{num_blocks} * C >= kParallelMinElements)
  for (int tile = 0; tile < C; tile += kColumnsPerTile) {
    const int tile_end = std::min(C, tile + kColumnsPerTile);
    for (int block = 1; block < num_blocks; ++block) {
      const T* block_sum = partial + int64_t{block} * C;
      for (int c = tile; c < tile_end; ++c) partial[c] += block_sum[c];
    }
    for (int c = tile; c < tile_end; ++c) dst[c] += partial[c];
  }
}

}  // namespace

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
  const int num_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
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
