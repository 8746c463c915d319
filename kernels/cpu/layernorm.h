// LayerNorm over the last dimension, plain and fused with the DeepNorm residual.
//
// DeepNorm (docs/design.md#deepnorm): every sublayer G computes x ← LN(α·x + G(x)). The fused
// kernel reads x and g once, forms z = α·x + g in registers, normalises, and saves only mean and
// rstd per row; backward recomputes ẑ from x and g instead of storing z.
#pragma once

namespace deepnet::cpu {

// y (N, C) = (x − mean)·rstd·gamma + beta; mean, rstd (N) saved for backward.
template <typename T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta, int N,
                       int C, T eps);

// dx (N, C) overwrite; dgamma, dbeta (C) accumulate.
template <typename T>
void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                        const T* mean, const T* rstd, int N, int C);

// y (N, C) = LN(alpha·x + g); mean, rstd (N) of z = alpha·x + g saved. y may alias x or g.
template <typename T>
void deepnorm_forward(T* y, T* mean, T* rstd, const T* x, const T* g, const T* gamma, const T* beta,
                      T alpha, int N, int C, T eps);

// With dz the gradient at z: dx = alpha·dz and dg = dz (overwrite; dx or dg may be null, and
// either may alias dy); dgamma, dbeta (C) accumulate.
template <typename T>
void deepnorm_backward(T* dx, T* dg, T* dgamma, T* dbeta, const T* dy, const T* x, const T* g,
                       const T* gamma, const T* mean, const T* rstd, T alpha, int N, int C);

}  // namespace deepnet::cpu
