// Sums over rows (parameter gradients such as dbias, dgamma, dbeta) that do not depend on the
// thread count: rows are cut into fixed blocks, each block sums its rows in order, then the blocks
// are summed in block order.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/parallel_threshold.h"

namespace deepnet::cpu {

constexpr int kRowsPerBlock = 32;
constexpr int kColumnsPerTile = 64;

// Blocks of kRowsPerBlock rows that cover N rows.
inline int NumRowBlocks(int N) { return (N + kRowsPerBlock - 1) / kRowsPerBlock; }

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

}  // namespace deepnet::cpu
