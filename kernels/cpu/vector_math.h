// exp that vectorises: inside an `omp simd` loop it inlines to vector instructions, where a call
// to the C library's expf stays one scalar call per element.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace deepnet::cpu {

// eˣ in fp32 to within 2 ulp for normal results (Cody–Waite reduction x = n·ln2 + r with
// |r| ≤ ln2/2, then the degree-6 minimax polynomial of the Cephes library, then scaling by 2ⁿ
// through the exponent bits). Results that would be subnormal flush to 0; −∞ gives 0, x > 88.72
// gives +∞, NaN gives NaN.
inline float ExpFloat(float x) {
  constexpr float kMax = 88.7228391f, kMin = -87.3365448f;  // ln(FLT_MAX), ln(FLT_MIN)
  constexpr float kLog2e = 1.44269504f, kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
  // Plain comparisons, not fmin/fmax: those are library calls with NaN rules that block vectors.
  const float clamped = x < kMin ? kMin : (x > kMax ? kMax : x);
  const float n = std::floor(clamped * kLog2e + 0.5f);
  const float r = (clamped - n * kLn2High) - n * kLn2Low;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float poly = p * r * r + r + 1.0f;
  // 2ⁿ·poly: n ∈ [−126, 128]; split 2ⁿ in two factors so that n = 128 stays finite before
  // the product rounds it to +∞ where it belongs.
  const int32_t e = static_cast<int32_t>(n);
  const float half_scale = std::bit_cast<float>((e / 2 + 127) << 23);
  const float rest_scale = std::bit_cast<float>((e - e / 2 + 127) << 23);
  float result = poly * half_scale * rest_scale;
  result = x < kMin ? 0.0f : result;
  result = x > kMax ? INFINITY : result;
  return x != x ? x : result;
}

// eˣ: ExpFloat for float, the C library for double (the reference precision of the tests).
template <typename T>
inline T Exp(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return ExpFloat(x);
  } else {
    return std::exp(x);
  }
}

}  // namespace deepnet::cpu
