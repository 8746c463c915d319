// LayerNorm over the last dimension on the GPU, plain and fused with the DeepNorm residual
// z = α·x + g (kernels/cpu/layernorm.h states the semantics). Letters: N rows, C channels.
//
// One kernel serves both ops: plain LayerNorm is the DeepNorm kernel with g = null and α = 1
// (1·x is exact). A row lives in registers between its one read and its one write: forward reads
// x and g once and writes y; backward reads dy, x, g once, recomputes ẑ from them and writes dx
// and dg. Statistics are f32. dgamma/dbeta are reduced without atomics: each row group sums its
// rows into a per-slot partial (a fixed number of slots that depends only on N and C), and a
// second pass adds the slots in order, so every run gives the same bits.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/types.h"
#include "runtime/dtype.h"

namespace deepnet::cuda {

struct NormForwardArgs {
  void* y = nullptr;        // (N, C), may alias x or g
  FlexPtr mean, rstd;       // (N), f32 (preferred) or dtype
  const void* x = nullptr;  // (N, C)
  const void* g = nullptr;  // (N, C) DeepNorm's sublayer output; null for plain LayerNorm
  FlexPtr gamma, beta;      // (C), f32 or dtype
  float alpha = 1.0f;
  float eps = 1e-5f;
  int N = 0, C = 0;
  DType dtype = DType::kF32;  // of y, x, g
};

struct NormBackwardArgs {
  void* dx = nullptr;        // (N, C) = α·dz, overwrite; may be null; may alias dy
  void* dg = nullptr;        // (N, C) = dz, overwrite; may be null; may alias dy
  FlexPtr dgamma, dbeta;     // (C) accumulate (+=); f32 or dtype
  const void* dy = nullptr;  // (N, C)
  const void* x = nullptr;   // (N, C)
  const void* g = nullptr;   // (N, C) or null (plain LayerNorm)
  FlexPtr gamma;             // (C)
  FlexPtr mean, rstd;        // (N) saved by the forward
  float alpha = 1.0f;
  int N = 0, C = 0;
  DType dtype = DType::kF32;  // of dx, dg, dy, x, g
};

// Largest C the kernels hold in registers for any dtype and alignment (16 elements per thread,
// 512 threads per row); 16-byte aligned bf16/f16 rows go up to 16384.
inline constexpr int kNormMaxChannels = 8192;

void NormForward(const NormForwardArgs& args, cudaStream_t stream);

size_t NormBackwardScratchBytes(int N, int C, DType dtype);
void NormBackward(const NormBackwardArgs& args, void* scratch, cudaStream_t stream);

}  // namespace deepnet::cuda
