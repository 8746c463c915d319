// Small pointwise helpers over n elements: add, axpy, scale; and zeroing memory.
#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/parallel_threshold.h"

namespace deepnet::cpu {

// The loops say `simd` because y may be an input (in place), which vectorises fine element by
// element but defeats the compiler's own overlap check.

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

void zero_bytes(void* data, size_t bytes) {
  // One memset per thread: a single thread cannot use the whole memory bandwidth.
  constexpr size_t kParallelMinBytes = size_t{1} << 20;
  constexpr size_t kBlock = size_t{1} << 16;  // fixed blocks, whatever the thread count
  auto* first = static_cast<unsigned char*>(data);
  const int64_t blocks = static_cast<int64_t>((bytes + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static) if (bytes >= kParallelMinBytes)
  for (int64_t block = 0; block < blocks; ++block) {
    const size_t begin = static_cast<size_t>(block) * kBlock;
    std::memset(first + begin, 0, std::min(kBlock, bytes - begin));
  }
}

#define DEEPNET_INSTANTIATE_ELEMENTWISE(T)               \
  template void add<T>(T*, const T*, const T*, int64_t); \
  template void axpy<T>(T*, const T*, T, int64_t);       \
  template void scale<T>(T*, const T*, T, int64_t);
DEEPNET_INSTANTIATE_ELEMENTWISE(float)
DEEPNET_INSTANTIATE_ELEMENTWISE(double)
#undef DEEPNET_INSTANTIATE_ELEMENTWISE

}  // namespace deepnet::cpu
