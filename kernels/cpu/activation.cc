// Pointwise activations over n elements: ReLU and GELU (exact erf form).
#include "kernels/cpu/activation.h"

#include <cmath>
#include <numbers>

#include "kernels/cpu/parallel_threshold.h"

namespace deepnet::cpu {
namespace {

template <typename T>
constexpr T kInvSqrt2 = T{1} / std::numbers::sqrt2_v<T>;

template <typename T>
T standard_normal_cdf(T x) {
  return T{0.5} * (T{1} + std::erf(x * kInvSqrt2<T>));
}

template <typename T>
T standard_normal_pdf(T x) {
  // 1/√(2π) = (1/√2)·(1/√π)
  constexpr T kInvSqrt2Pi = kInvSqrt2<T> * std::numbers::inv_sqrtpi_v<T>;
  return kInvSqrt2Pi * std::exp(T{-0.5} * x * x);
}

}  // namespace

// ReLU runs in place (dx = dy): `simd` says that is fine, which a compiler's own overlap check
// cannot know, and both operands are loaded unconditionally so the choice is a blend, not a branch.
template <typename T>
void relu_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : T{0};
}

template <typename T>
void relu_backward(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) {
    const T gradient = dy[i];
    dx[i] = x[i] > 0 ? gradient : T{0};
  }
}

template <typename T>
void gelu_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * standard_normal_cdf(x[i]);
}

template <typename T>
void gelu_backward(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) {
    const T x_i = x[i];
    dx[i] = dy[i] * (standard_normal_cdf(x_i) + x_i * standard_normal_pdf(x_i));
  }
}

#define DEEPNET_INSTANTIATE_ACTIVATION(T)                          \
  template void relu_forward<T>(T*, const T*, int64_t);            \
  template void relu_backward<T>(T*, const T*, const T*, int64_t); \
  template void gelu_forward<T>(T*, const T*, int64_t);            \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);
DEEPNET_INSTANTIATE_ACTIVATION(float)
DEEPNET_INSTANTIATE_ACTIVATION(double)
#undef DEEPNET_INSTANTIATE_ACTIVATION

}  // namespace deepnet::cpu
