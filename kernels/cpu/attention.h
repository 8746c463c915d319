// Scaled dot-product multi-head attention with causal and key-padding masks.
//
// q (B, Tq, C), k and v (B, Tk, C), C = H·D: head h of a token is channels [h·D, (h+1)·D), so
// the projections' outputs feed in without a transpose. Scores are q·kᵀ/√D; masked keys get
// probability 0. A query row whose keys are all masked (a padding-only row) yields zero output
// and zero gradient, never NaN.
#pragma once

#include <cstdint>

#include "kernels/op_types.h"
#include "runtime/philox.h"

namespace deepnet::cpu {

// out (B, Tq, C) = dropout(softmax(q·kᵀ/√D + mask))·v.
// probs (B, H, Tq, Tk): the softmax before dropout, saved for backward.
// key_padding_mask (B, Tk): 1 = padding (never attended), or null.
// Dropout on the probabilities with rate dropout_p from `stream` (element index = offset in probs).
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const uint8_t* key_padding_mask, const AttentionShape& shape,
                       float dropout_p, const RngStream& stream);

// dq (B, Tq, C), dk and dv (B, Tk, C): overwrite.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const AttentionShape& shape, float dropout_p,
                        const RngStream& stream);

}  // namespace deepnet::cpu
