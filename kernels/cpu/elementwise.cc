// Small pointwise helpers over n elements: add, axpy, scale.
#include "kernels/cpu/elementwise.h"

namespace deepnet::cpu {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMinElements = 1 << 15;

// The loops say `simd` because y may be an input (in place), which vectorises fine element by
// element but defeats the compiler's own overlap check.

}  // namespace

template <typename T>
void add(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void axpy(T* y, const T* x, T alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
void scale(T* y, const T* x, T alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}

#define DEEPNET_INSTANTIATE_ELEMENTWISE(T)               \
  template void add<T>(T*, const T*, const T*, int64_t); \
  template void axpy<T>(T*, const T*, T, int64_t);       \
  template void scale<T>(T*, const T*, T, int64_t);
DEEPNET_INSTANTIATE_ELEMENTWISE(float)
DEEPNET_INSTANTIATE_ELEMENTWISE(double)
#undef DEEPNET_INSTANTIATE_ELEMENTWISE

}  // namespace deepnet::cpu
