// Pointwise kernels of the CUDA backend and the small reductions that sit beside them:
// activations, dropout, add/axpy/scale, dtype conversion, embedding lookup and its deterministic
// scatter, sinusoidal positions, and column sums (bias gradients).
//
// Letters as kernels/cpu: n elements, N rows (tokens), C channels, V vocab, B batch, T time.
// Every pointer is device memory. `dtype` is the element type of the float tensors (f32, bf16,
// f16); math runs in f32 and rounds to the tensor's type on store. Semantics are those of the
// kernels/cpu op of the same name (outputs may alias inputs where the CPU op allows it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/cuda/types.h"
#include "runtime/dtype.h"
#include "runtime/philox.h"

namespace deepnet::cuda {

void ActivationForward(ActivationKind kind, void* y, const void* x, int64_t n, DType dtype,
                       cudaStream_t stream);
// dx = dy · act'(x) (dx may alias dy).
void ActivationBackward(ActivationKind kind, void* dx, const void* dy, const void* x, int64_t n,
                        DType dtype, cudaStream_t stream);

// y = x · keep(e) / (1 − p), keep(e) = PhiloxUniform(stream, e) ≥ p: the same mask as
// cpu::dropout_forward, bit for bit. Forward and backward are the same map. y may alias x.
void Dropout(void* y, const void* x, int64_t n, float p, const RngStream& rng, DType dtype,
             cudaStream_t stream);

// y = a + b; y += alpha · x; y = alpha · x (outputs may alias inputs).
void Add(void* y, const void* a, const void* b, int64_t n, DType dtype, cudaStream_t stream);
void Axpy(void* y, const void* x, float alpha, int64_t n, DType dtype, cudaStream_t stream);
void Scale(void* y, const void* x, float alpha, int64_t n, DType dtype, cudaStream_t stream);

// dst = src rounded to dst's type (nearest even); any pair of f32, bf16, f16.
void Convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n,
             cudaStream_t stream);

// out (N, C) = table[tokens[n]] · scale.
void EmbeddingForward(void* out, const int32_t* tokens, const void* table, int N, int V, int C,
                      float scale, DType dtype, cudaStream_t stream);

// dtable (V, C) += scale · Σ_{n: tokens[n] = v} dout[n], each row's terms added in the order of n
// (a stable sort of the tokens groups them; no atomics), so every run gives the same bits.
// dtable may be f32 while dout is 16-bit (fp32 parameter gradients). Tokens outside [0, V) are
// skipped. Needs EmbeddingBackwardScratchBytes(N, V) bytes of scratch.
size_t EmbeddingBackwardScratchBytes(int N, int V);
void EmbeddingBackward(FlexPtr dtable, const int32_t* tokens, const void* dout, DType dout_dtype,
                       int N, int V, int C, float scale, void* scratch, cudaStream_t stream);

// x (B, T, C) += PE[pos_offset + t] (sinusoidal, computed in double as the CPU op).
void PositionsAdd(void* x, int B, int T, int C, int pos_offset, DType dtype, cudaStream_t stream);

// out (C) = or += Σ_r in (R, C)[r], in a fixed order of additions (the same bits on every run and
// every GPU). in is f32 or the 16-bit dtype; out any FlexPtr. Needs ColumnSumScratchBytes(R, C)
// bytes of scratch (0 for short columns).
size_t ColumnSumScratchBytes(int R, int C);
void ColumnSum(FlexPtr out, bool accumulate, const void* in, DType in_dtype, int R, int C,
               void* scratch, cudaStream_t stream);

}  // namespace deepnet::cuda
