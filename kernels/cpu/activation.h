// Pointwise activations over n elements: ReLU and GELU (exact erf form, as PyTorch's default).
#pragma once

#include <cstdint>

namespace deepnet::cpu {

template <typename T>
void relu_forward(T* y, const T* x, int64_t n);
// dx = dy · [x > 0] (overwrite; dx may alias dy).
template <typename T>
void relu_backward(T* dx, const T* dy, const T* x, int64_t n);

// y = x · Φ(x) = 0.5·x·(1 + erf(x/√2)).
template <typename T>
void gelu_forward(T* y, const T* x, int64_t n);
// dx = dy · (Φ(x) + x·φ(x)) (overwrite; dx may alias dy).
template <typename T>
void gelu_backward(T* dx, const T* dy, const T* x, int64_t n);

}  // namespace deepnet::cpu
