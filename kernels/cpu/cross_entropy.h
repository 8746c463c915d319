// Fused log-softmax + cross-entropy with label smoothing and an ignore index.
//
// Per row n with target t (docs/design.md#model-conventions, as PyTorch's
// CrossEntropyLoss(label_smoothing=ε)):
//   loss_n = (1 − ε)·(−log p_t) + ε·mean_v(−log p_v),  p = softmax(logits_n);
// rows with t == ignore_index have loss 0 and gradient 0.
#pragma once

#include <cstdint>

namespace deepnet::cpu {

// losses (N) per row; lse (N) = log Σ_v exp(logits) saved for backward.
template <typename T>
void cross_entropy_forward(T* losses, T* lse, const T* logits, const int32_t* targets, int N, int V,
                           T smoothing, int ignore_index);

// dlogits (N, V) = dloss · ∂loss_n/∂logits_n (overwrite), where the trainer's loss is
// dloss · Σ_n loss_n (e.g. dloss = 1 / number of non-ignored tokens).
template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                            T dloss, int N, int V, T smoothing, int ignore_index);

}  // namespace deepnet::cpu
