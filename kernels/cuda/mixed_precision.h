// Mixed precision on the CUDA backend: the policy and the optimizer-side kernels that carry it
// (multi-tensor AdamW over fp32 master weights, the deterministic sum of squares that doubles as
// the inf/NaN check).
//
// Policy (kernels/cuda/README.md has the long form):
// - Compute in bf16: activations and the weights the GEMMs read are bf16; every reduction
//   (LayerNorm statistics, softmax, cross-entropy, GEMM accumulation) runs in fp32.
// - Master weights, Adam moments and parameter gradients are fp32. The GEMMs write dweight in
//   fp32 directly from bf16 operands (cuBLASLt with C/D in fp32), and the bias, LayerNorm and
//   embedding gradients accumulate in fp32, so gradients summed over micro-batches and reduced
//   across data-parallel ranks stay fp32.
// - After the update, AdamW writes the new bf16 compute copy of each weight in the same pass.
// - bf16 has fp32's exponent range, so no loss scaling is needed. fp16 (option) has not: the loss
//   is multiplied by LossScaler::scale() before backward, gradients are checked for inf/NaN
//   (SumOfSquares of the gradients is non-finite exactly when one is), the step is skipped and the
//   scale backed off on overflow, and AdamW's grad_scale divides the scale out again
//   (grad_scale = clip_factor / loss_scale). The scaler itself is host logic: train/loss_scaler.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "kernels/cuda/types.h"
#include "kernels/op_types.h"
#include "runtime/dtype.h"

namespace deepnet::cuda {

// ---- optimizer kernels ----

// One parameter tensor of a multi-tensor AdamW step. param is the fp32 master (f32; 16-bit is
// accepted but loses small updates), m and v are f32, grad any float dtype; `compute_copy`
// (optional, ptr null for none) receives the updated param rounded to its dtype.
struct AdamWTensor {
  FlexPtr param;
  float* m = nullptr;
  float* v = nullptr;
  FlexPtr grad;
  FlexPtr compute_copy;
  int64_t n = 0;
};

// AdamW as cpu::adamw_update over every tensor, a few launches for the whole list.
// grad_scale multiplies the gradients first (clipping factor ÷ loss scale).
void MultiTensorAdamW(std::span<const AdamWTensor> tensors, const AdamWConfig& config, int64_t step,
                      float grad_scale, cudaStream_t stream);

// A read-only view of a device tensor for reductions.
struct TensorRef {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t n = 0;
};

// Σ x² over all tensors, accumulated in double in blocks of a fixed size added in a fixed order
// (the same bits on every run). +inf or NaN when any element is non-finite, so
// !std::isfinite(result) is the overflow check of loss scaling. Waits for the stream.
size_t SumOfSquaresScratchBytes(std::span<const TensorRef> tensors);
double SumOfSquares(std::span<const TensorRef> tensors, void* scratch, cudaStream_t stream);

}  // namespace deepnet::cuda
