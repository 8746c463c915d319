// Host bf16 / fp16 conversions (round to nearest even, NaN kept NaN, overflow to infinity).
#include "runtime/half.h"

#include <glog/logging.h>

#include <bit>
#include <cmath>
#include <cstring>

namespace deepnet {

uint16_t FloatToBF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x0040);  // quiet NaN
  const uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float BF16ToFloat(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t FloatToF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;   // NaN
  if (abs >= 0x477FF000) return sign | 0x7C00;  // rounds to >= 65520: infinity
  if (abs >= 0x38800000) {                      // normal fp16 (>= 2^-14)
    const uint32_t mantissa = abs & 0x007FFFFF;
    const uint32_t exponent = (abs >> 23) - 127 + 15;
    uint32_t half = (exponent << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // carries into the exponent
    return sign | static_cast<uint16_t>(half);
  }
  // Subnormal or zero: value / 2^-24 rounded to an integer, ties to even.
  const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // exact: a power of two
  return sign | static_cast<uint16_t>(std::nearbyint(scaled));
}

float F16ToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1F;
  const uint32_t mantissa = bits & 0x3FF;
  float magnitude;
  if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  } else {
    magnitude = std::bit_cast<float>(((exponent - 15 + 127) << 23) | (mantissa << 13));
  }
  return std::bit_cast<float>(std::bit_cast<uint32_t>(magnitude) | sign);
}

double RoundToDType(DType dtype, double value) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<float>(value);
    case DType::kBF16:
      return BF16ToFloat(FloatToBF16(static_cast<float>(value)));
    case DType::kF16:
      return F16ToFloat(FloatToF16(static_cast<float>(value)));
    default:
      return value;
  }
}

namespace {

double Load(DType dtype, const void* data, int64_t i) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<const float*>(data)[i];
    case DType::kF64:
      return static_cast<const double*>(data)[i];
    case DType::kBF16:
      return BF16ToFloat(static_cast<const uint16_t*>(data)[i]);
    case DType::kF16:
      return F16ToFloat(static_cast<const uint16_t*>(data)[i]);
    default:
      LOG(FATAL) << "ConvertElements: " << DTypeName(dtype) << " is not a float dtype";
  }
  return 0.0;
}

void Store(DType dtype, void* data, int64_t i, double value) {
  switch (dtype) {
    case DType::kF32:
      static_cast<float*>(data)[i] = static_cast<float>(value);
      return;
    case DType::kF64:
      static_cast<double*>(data)[i] = value;
      return;
    case DType::kBF16:
      static_cast<uint16_t*>(data)[i] = FloatToBF16(static_cast<float>(value));
      return;
    case DType::kF16:
      static_cast<uint16_t*>(data)[i] = FloatToF16(static_cast<float>(value));
      return;
    default:
      LOG(FATAL) << "ConvertElements: " << DTypeName(dtype) << " is not a float dtype";
  }
}

}  // namespace

void ConvertElements(DType dst_dtype, void* dst, DType src_dtype, const void* src, int64_t n) {
  if (dst_dtype == src_dtype) {
    std::memmove(dst, src, static_cast<size_t>(n) * DTypeSize(dst_dtype));
    return;
  }
  // Through double: f32 -> bf16 rounds once (double holds every f32 exactly); f64 -> bf16 rounds
  // to f32 first, as a device conversion of an f64 value would.
  for (int64_t i = 0; i < n; ++i) Store(dst_dtype, dst, i, Load(src_dtype, src, i));
}

}  // namespace deepnet
