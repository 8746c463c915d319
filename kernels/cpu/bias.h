// Bias add over rows: y (N, C) = x (N, C) + bias (C).
#pragma once

namespace deepnet::cpu {

// y may alias x.
template <typename T>
void bias_add_forward(T* y, const T* x, const T* bias, int N, int C);

// dbias (C) += Σ_n dy (N, C). (dx = dy needs no kernel.)
template <typename T>
void bias_add_backward(T* dbias, const T* dy, int N, int C);

}  // namespace deepnet::cpu
