// Inverted dropout from the Philox stream; n elements, one Philox block per group of four.
#include "kernels/cpu/dropout.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace deepnet::cpu {
namespace {

// Philox4x32-10 (runtime/philox.h) of kLanes consecutive groups at once, one array per counter
// word: every round is the same operation on all lanes. Writes the words in element order,
// bits[4·lane + w] = word w of PhiloxBlock(stream, first_group + lane).
constexpr int kLanes = 16;
constexpr int kChunk = 4 * kLanes;  // elements per call

#if defined(__AVX2__)

// The low and high 32-bit halves of a·b in each of 8 lanes. AVX2 multiplies 32 × 32 → 64 bits
// only in the even lanes; the odd lanes go through a 64-bit shift. (Left to the compiler, the
// widening products cost a cross-lane shuffle per step and twice the time.)
inline void MulHiLo8(__m256i a, __m256i b, __m256i* lo, __m256i* hi) {
  const __m256i even = _mm256_mul_epu32(a, b);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

void PhiloxLanes(const RngStream& stream, uint32_t first_group, uint32_t bits[kChunk]) {
  constexpr int kVectors = kLanes / 8;  // independent chains, interleaved for the pipelines
  const __m256i mul0 = _mm256_set1_epi32(static_cast<int32_t>(0xD2511F53u));
  const __m256i mul1 = _mm256_set1_epi32(static_cast<int32_t>(0xCD9E8D57u));
  uint32_t key0 = static_cast<uint32_t>(stream.seed);
  uint32_t key1 = static_cast<uint32_t>(stream.seed >> 32);
  __m256i c0[kVectors], c1[kVectors], c2[kVectors], c3[kVectors];
  for (int v = 0; v < kVectors; ++v) {
    const __m256i first = _mm256_set1_epi32(static_cast<int32_t>(first_group + 8 * v));
    c0[v] = _mm256_add_epi32(first, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    c1[v] = _mm256_set1_epi32(static_cast<int32_t>(stream.site));
    c2[v] = _mm256_set1_epi32(static_cast<int32_t>(stream.micro_batch));
    c3[v] = _mm256_set1_epi32(static_cast<int32_t>(stream.step));
  }
  for (int round = 0; round < 10; ++round) {
    const __m256i k0 = _mm256_set1_epi32(static_cast<int32_t>(key0));
    const __m256i k1 = _mm256_set1_epi32(static_cast<int32_t>(key1));
    for (int v = 0; v < kVectors; ++v) {
      __m256i lo0, hi0, lo1, hi1;
      MulHiLo8(c0[v], mul0, &lo0, &hi0);
      MulHiLo8(c2[v], mul1, &lo1, &hi1);
      c0[v] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[v]), k0);
      c2[v] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[v]), k1);
      c1[v] = lo1;
      c3[v] = lo0;
    }
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  // Transpose each 4 × 8 block (word, group) to element order: pairs of words, then quadruples
  // (groups g and g + 4 share a 128-bit half), then the halves put in group order.
  __m256i* out = reinterpret_cast<__m256i*>(bits);
  for (int v = 0; v < kVectors; ++v) {
    const __m256i w01_low = _mm256_unpacklo_epi32(c0[v], c1[v]);   // g0 g1 | g4 g5
    const __m256i w01_high = _mm256_unpackhi_epi32(c0[v], c1[v]);  // g2 g3 | g6 g7
    const __m256i w23_low = _mm256_unpacklo_epi32(c2[v], c3[v]);
    const __m256i w23_high = _mm256_unpackhi_epi32(c2[v], c3[v]);
    const __m256i g04 = _mm256_unpacklo_epi64(w01_low, w23_low);
    const __m256i g15 = _mm256_unpackhi_epi64(w01_low, w23_low);
    const __m256i g26 = _mm256_unpacklo_epi64(w01_high, w23_high);
    const __m256i g37 = _mm256_unpackhi_epi64(w01_high, w23_high);
    _mm256_storeu_si256(out + 4 * v + 0, _mm256_permute2x128_si256(g04, g15, 0x20));
    _mm256_storeu_si256(out + 4 * v + 1, _mm256_permute2x128_si256(g26, g37, 0x20));
    _mm256_storeu_si256(out + 4 * v + 2, _mm256_permute2x128_si256(g04, g15, 0x31));
    _mm256_storeu_si256(out + 4 * v + 3, _mm256_permute2x128_si256(g26, g37, 0x31));
  }
}

#else  // portable: the same rounds as lane loops for the compiler to vectorise

void PhiloxLanes(const RngStream& stream, uint32_t first_group, uint32_t bits[kChunk]) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t key0 = static_cast<uint32_t>(stream.seed);
  uint32_t key1 = static_cast<uint32_t>(stream.seed >> 32);
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
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
  for (int lane = 0; lane < kLanes; ++lane) {
    bits[4 * lane + 0] = c0[lane];
    bits[4 * lane + 1] = c1[lane];
    bits[4 * lane + 2] = c2[lane];
    bits[4 * lane + 3] = c3[lane];
  }
}

#endif

// How an element is dropped: kept when its 24 random bits reach `threshold`, then scaled.
template <typename T>
struct MaskRule {
  explicit MaskRule(float p)
      // The scale is the fp32 number 1/(1 − p) in every precision and on every backend; p ≥ 1
      // drops everything (no element passes the test u ≥ p, and 0 avoids 0·∞).
      : scale(p < 1.0f ? static_cast<T>(1.0f / (1.0f - p)) : T(0)),
        // UniformFromBits(b) ≥ p exactly when the integer b >> 8 ≥ ⌈p·2²⁴⌉ (p·2²⁴ is exact in
        // fp32): an integer test vectorises where the unsigned-to-float conversion does not.
        threshold(static_cast<int32_t>(std::ceil(std::clamp(p, 0.0f, 1.0f) * 16777216.0f))) {}
  T scale;
  int32_t threshold;
};

// Elements chunk·kChunk + begin .. chunk·kChunk + end − 1 of the stream: y[i − begin] =
// x[i − begin] · keep · scale. Element e takes word e % 4 of group e / 4, and a chunk is kLanes
// groups, so any cut of the elements into chunks gives the same bits.
template <typename T>
void MaskChunk(T* y, const T* x, uint64_t chunk, int begin, int end, const MaskRule<T>& rule,
               const RngStream& stream) {
  uint32_t bits[kChunk];
  PhiloxLanes(stream, static_cast<uint32_t>(chunk * kLanes), bits);
  // In place (y = x) is fine element by element; the product is taken either way so that the
  // choice is a blend, not a branch.
#pragma omp simd
  for (int i = begin; i < end; ++i) {
    const T kept = x[i - begin] * rule.scale;
    // The 24 bits UniformFromBits uses.
    y[i - begin] = static_cast<int32_t>(bits[i] >> 8) >= rule.threshold ? kept : T(0);
  }
}

// y = x · keep(e) · scale for every element e; chunks are the independent units of work, so the
// result does not depend on the thread count.
template <typename T>
void ApplyMask(T* y, const T* x, int64_t n, float p, const RngStream& stream) {
  const MaskRule<T> rule(p);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t first = chunk * kChunk;
    const int count = static_cast<int>(std::min<int64_t>(kChunk, n - first));
    MaskChunk(y + first, x + first, static_cast<uint64_t>(chunk), 0, count, rule, stream);
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

template <typename T>
void dropout_range(T* y, const T* x, int64_t n, uint64_t first, float p, const RngStream& stream) {
  if (p <= 0.0f) return Copy(y, x, n);
  const MaskRule<T> rule(p);
  int64_t done = 0;
  while (done < n) {
    const uint64_t index = first + static_cast<uint64_t>(done);
    const int begin = static_cast<int>(index % kChunk);
    const int end = static_cast<int>(std::min<int64_t>(kChunk, begin + (n - done)));
    MaskChunk(y + done, x + done, index / kChunk, begin, end, rule, stream);
    done += end - begin;
  }
}

template void dropout_forward<float>(float*, const float*, int64_t, float, const RngStream&);
template void dropout_forward<double>(double*, const double*, int64_t, float, const RngStream&);
template void dropout_backward<float>(float*, const float*, int64_t, float, const RngStream&);
template void dropout_backward<double>(double*, const double*, int64_t, float, const RngStream&);
template void dropout_range<float>(float*, const float*, int64_t, uint64_t, float,
                                   const RngStream&);
template void dropout_range<double>(double*, const double*, int64_t, uint64_t, float,
                                    const RngStream&);

}  // namespace deepnet::cpu
