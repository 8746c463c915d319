// StrictBackend: a Backend that behaves like a separate device but runs on the CPU, so every
// device code path (host <-> device copies, mixed precision casts, staged communication) is
// exercised without a GPU.
//
// - Its tensors carry Device::Strict(). Their storage pointers are poisoned (a non-canonical
//   address): any host dereference of device memory crashes at once instead of silently working.
//   Only this backend's Copy (host <-> device, device <-> device) reads or writes them.
// - Every op accepts the float dtypes CudaBackend accepts (f32, bf16, f16; f64 is rejected, as on
//   CUDA), i32 token ids and targets and u8 masks, in any mix of float dtypes (so the combinations
//   CUDA needs: parameter gradients, LayerNorm statistics and AdamW masters in f32 beside 16-bit
//   activations). It computes with the CPU backend in f32 and rounds every output to its tensor's
//   dtype: a missing cast, or 16-bit storage where fp32 was meant, shows in the numbers.
// - Results equal the CPU backend's bit for bit for f32 tensors. Attention's `probs` is the CPU's
//   (B, H, Tq, Tk) softmax, not CUDA's stats buffer.
// - Host tensors are accepted only by Copy; passed to any other op they are fatal, naming the op.
//   An output that partially overlaps another argument (no defined result on a GPU) is fatal too.
// - Synchronous: nothing models CUDA's asynchrony or its different order of additions.
#pragma once

#include "kernels/backend.h"

namespace deepnet {

// The process's strict backend (registers the strict device's allocator on first use).
const Backend& StrictBackend();

}  // namespace deepnet
