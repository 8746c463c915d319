// Fused log-softmax + cross-entropy with label smoothing and an ignore index on the GPU
// (kernels/cpu/cross_entropy.h states the semantics). Letters: N rows, V vocab.
//
// One block per row, one read of the logits in forward (an online max/sum and the row's plain sum
// for the smoothing term, all in f32), one read and one write in backward.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/types.h"
#include "runtime/dtype.h"

namespace deepnet::cuda {

// losses, lse (N): f32 or the logits' dtype. logits (N, V) of `dtype`. Rows whose target is
// ignore_index get loss 0; a target outside [0, V) gives NaN (the CPU op does not check either).
void CrossEntropyForward(FlexPtr losses, FlexPtr lse, const void* logits, const int32_t* targets,
                         int N, int V, float smoothing, int ignore_index, DType dtype,
                         cudaStream_t stream);

// dlogits (N, V) = dloss · (softmax − (1 − ε)·onehot − ε/V) (overwrite; may alias logits);
// ignored rows get 0.
void CrossEntropyBackward(void* dlogits, const void* logits, FlexPtr lse, const int32_t* targets,
                          float dloss, int N, int V, float smoothing, int ignore_index, DType dtype,
                          cudaStream_t stream);

}  // namespace deepnet::cuda
