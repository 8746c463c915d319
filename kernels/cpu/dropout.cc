// Inverted dropout from the Philox stream; n elements, one Philox block per group of four.
#include "kernels/cpu/dropout.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace deepnet::cpu {
namespace {

// Philox4x32-10 (runtime/philox.h) of kLanes consecutive groups at once, one array per counter
// word: every round is the same operation on all lanes, so it vectorises. Gives exactly
// PhiloxBlock(stream, first_group + lane) in words[0..3][lane].
constexpr int kLanes = 16;

void PhiloxLanes(const RngStream& stream, uint32_t first_group, uint32_t words[4][kLanes]) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t key0 = static_cast<uint32_t>(stream.seed);
  uint32_t key1 = static_cast<uint32_t>(stream.seed >> 32);
  uint32_t(&c0)[kLanes] = words[0], (&c1)[kLanes] = words[1];
  uint32_t(&c2)[kLanes] = words[2], (&c3)[kLanes] = words[3];
  for (int lane = 0; lane < kLanes; ++lane) {
    c0[lane] = first_group + static_cast<uint32_t>(lane);
    c1[lane] = stream.site;
    c2[lane] = stream.micro_batch;
    c3[lane] = stream.step;
  }
  for (int round = 0; round < 10; ++round) {
#pragma omp simd
    for (int lane = 0; lane < kLanes; ++lane) {
      const uint64_t product0 = static_cast<uint64_t>(kMul0) * c0[lane];
      const uint64_t product1 = static_cast<uint64_t>(kMul1) * c2[lane];
      const uint32_t next0 = static_cast<uint32_t>(product1 >> 32) ^ c1[lane] ^ key0;
      const uint32_t next2 = static_cast<uint32_t>(product0 >> 32) ^ c3[lane] ^ key1;
      c1[lane] = static_cast<uint32_t>(product1);
      c3[lane] = static_cast<uint32_t>(product0);
      c0[lane] = next0;
      c2[lane] = next2;
    }
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
}

// y = x · keep(e) · scale for every element e; element e takes word e % 4 of group e / 4, and
// every kLanes groups are one independent unit of work, so the result does not depend on the
// thread count.
template <typename T>
void ApplyMask(T* y, const T* x, int64_t n, float p, const RngStream& stream) {
  // The scale is the fp32 number 1/(1 − p) in every precision and on every backend; p ≥ 1 drops
  // everything (no element passes the test u ≥ p, and 0 avoids 0·∞).
  const T scale = p < 1.0f ? static_cast<T>(1.0f / (1.0f - p)) : T(0);
  // UniformFromBits(b) ≥ p exactly when the integer b >> 8 ≥ ⌈p·2²⁴⌉ (p·2²⁴ is exact in fp32):
  // an integer test vectorises where the unsigned-to-float conversion does not.
  const int32_t threshold =
      static_cast<int32_t>(std::ceil(std::clamp(p, 0.0f, 1.0f) * 16777216.0f));
  constexpr int64_t kChunk = 4 * kLanes;  // elements per unit of work
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    uint32_t words[4][kLanes];
    PhiloxLanes(stream, static_cast<uint32_t>(chunk * kLanes), words);
    int32_t high_bits[kChunk];  // the 24 bits UniformFromBits uses, in element order
    for (int i = 0; i < kChunk; ++i) high_bits[i] = static_cast<int32_t>(words[i % 4][i / 4] >> 8);
    const int64_t first = chunk * kChunk;
    const int count = static_cast<int>(std::min(kChunk, n - first));
    const T* x_chunk = x + first;
    T* y_chunk = y + first;
    // In place (y = x) is fine element by element; the product is taken either way so that the
    // choice is a blend, not a branch.
#pragma omp simd
    for (int i = 0; i < count; ++i) {
      const T kept = x_chunk[i] * scale;
      y_chunk[i] = high_bits[i] >= threshold ? kept : T(0);
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
