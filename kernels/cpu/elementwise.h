// Small pointwise helpers the model needs between the big ops.
#pragma once

#include <cstddef>
#include <cstdint>

namespace deepnet::cpu {

// y = a + b (y may alias a or b).
template <typename T>
void add(T* y, const T* a, const T* b, int64_t n);
// y += alpha · x.
template <typename T>
void axpy(T* y, const T* x, T alpha, int64_t n);
// y = alpha · x (y may alias x).
template <typename T>
void scale(T* y, const T* x, T alpha, int64_t n);
// Sets `bytes` bytes at `data` to zero, large blocks split over the threads.
void zero_bytes(void* data, size_t bytes);

}  // namespace deepnet::cpu
