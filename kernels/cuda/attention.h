// Multi-head attention on the GPU as tiled online-softmax ("flash") kernels: memory O(T) per row,
// never the (Tq, Tk) probability matrix. Semantics as kernels/cpu/attention.h (causal and
// key-padding masks, fully masked rows give zeros, dropout on the probabilities with element index
// = offset in (B, H, Tq, Tk), the same Philox bits as the CPU op).
//
// Letters: B batch, Tq queries, Tk keys, H heads, D head dim, C = H·D.
//
// Instead of probs, the forward saves "attention stats" that the backward reads back:
// - lse (B, H, Tq) f32 at byte 0: the natural-log log-sum-exp of each row's scaled, masked scores
//   (+inf for a fully masked row, so that every probability recomputed from it is exactly 0);
// - a copy of the key-padding mask (B, Tk) u8 at AttentionMaskOffset (zeros when there is none):
//   Backend::AttentionBackward takes no mask, and P recomputed from lse needs it.
// The backward recomputes P = exp(s − lse) tile by tile.
//
// Backward without the forward's output: the softmax gradient needs D_i = Σ_j P'_ij·dP'_ij
// (P' the dropped-out probabilities, dP' = dO·Vᵀ). The dQ kernel computes it in a first pass over
// the keys of its query tile, then dQ in a second; a dK/dV kernel per key tile reads D. Nothing is
// accumulated with atomics, so every run gives the same bits.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/op_types.h"
#include "runtime/dtype.h"
#include "runtime/philox.h"

namespace deepnet::cuda {

// Largest head dimension the kernels support (D is padded to 64 or 128 inside a tile).
inline constexpr int kAttentionMaxHeadDim = 128;

// Bytes of the stats buffer, and where the mask copy starts in it.
size_t AttentionStatsBytes(const AttentionShape& shape);
size_t AttentionMaskOffset(const AttentionShape& shape);

struct AttentionForwardArgs {
  void* out = nullptr;                   // (B, Tq, C)
  void* stats = nullptr;                 // AttentionStatsBytes(shape), written
  const void* q = nullptr;               // (B, Tq, C)
  const void* k = nullptr;               // (B, Tk, C)
  const void* v = nullptr;               // (B, Tk, C)
  const uint8_t* key_padding = nullptr;  // (B, Tk), 1 = padding; or null
  AttentionShape shape;
  float dropout_p = 0.0f;
  RngStream rng;
  DType dtype = DType::kF32;  // of out, q, k, v
};

struct AttentionBackwardArgs {
  void* dq = nullptr;          // (B, Tq, C) overwrite
  void* dk = nullptr;          // (B, Tk, C) overwrite
  void* dv = nullptr;          // (B, Tk, C) overwrite
  const void* dout = nullptr;  // (B, Tq, C)
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* stats = nullptr;  // the forward's stats (lse and mask copy)
  AttentionShape shape;
  float dropout_p = 0.0f;
  RngStream rng;
  DType dtype = DType::kF32;
};

void AttentionForward(const AttentionForwardArgs& args, cudaStream_t stream);

// Scratch: D (B, H, Tq) f32.
size_t AttentionBackwardScratchBytes(const AttentionShape& shape);
void AttentionBackward(const AttentionBackwardArgs& args, void* scratch, cudaStream_t stream);

}  // namespace deepnet::cuda
