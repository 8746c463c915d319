// Inverted dropout from the Philox stream; n elements, one Philox call per group of four.
#include "kernels/cpu/dropout.h"

#include <algorithm>
#include <cstdint>

namespace deepnet::cpu {
namespace {

// y = x · keep(e) · scale for every element e; each group of four elements is one Philox call and
// one independent unit of work, so the result does not depend on the thread count.
template <typename T>
void ApplyMask(T* y, const T* x, int64_t n, float p, const RngStream& stream) {
  // The scale is the fp32 number 1/(1 − p) in every precision and on every backend; p ≥ 1 drops
  // everything (no element passes the test u ≥ p, and 0 avoids 0·∞).
  const T scale = p < 1.0f ? static_cast<T>(1.0f / (1.0f - p)) : T(0);
  const int64_t groups = (n + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    const Philox4x32 block = PhiloxBlock(stream, static_cast<uint32_t>(g));
    const int64_t first = 4 * g;
    const int64_t count = std::min<int64_t>(4, n - first);
    for (int64_t j = 0; j < count; ++j) {
      const bool keep = UniformFromBits(block.v[j]) >= p;
      y[first + j] = keep ? x[first + j] * scale : T(0);
    }
  }
}

template <typename T>
void Copy(T* y, const T* x, int64_t n) {
  if (y != x) std::copy(x, x + n, y);
}

}  // namespace

template <typename T>
void dropout_forward(T* y, const T* x, int64_t n, float p, const RngStream& stream) {
  if (p <= 0.0f) return Copy(y, x, n);
  ApplyMask(y, x, n, p, stream);
}

template <typename T>
void dropout_backward(T* dx, const T* dy, int64_t n, float p, const RngStream& stream) {
  if (p <= 0.0f) return Copy(dx, dy, n);
  ApplyMask(dx, dy, n, p, stream);
}

template void dropout_forward<float>(float*, const float*, int64_t, float, const RngStream&);
template void dropout_forward<double>(double*, const double*, int64_t, float, const RngStream&);
template void dropout_backward<float>(float*, const float*, int64_t, float, const RngStream&);
template void dropout_backward<double>(double*, const double*, int64_t, float, const RngStream&);

}  // namespace deepnet::cpu
