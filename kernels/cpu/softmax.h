// Row softmax: y (N, C) = softmax(x) along C.
#pragma once

namespace deepnet::cpu {

// A row that is all −inf (fully masked) gives zeros. y may alias x.
template <typename T>
void softmax_forward(T* y, const T* x, int N, int C);

// dx = y ⊙ (dy − Σ_c dy·y) (overwrite; dx may alias dy).
template <typename T>
void softmax_backward(T* dx, const T* dy, const T* y, int N, int C);

}  // namespace deepnet::cpu
