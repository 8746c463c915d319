// 16-bit floats on the host: bf16 and IEEE fp16 <-> f32 with round-to-nearest-even (what the
// CUDA intrinsics __float2bfloat16_rn / __float2half_rn do), and element conversion between any
// two float dtypes. Used where 16-bit tensors reach the host: checkpoints, the strict test device.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace deepnet {

uint16_t FloatToBF16(float value);
float BF16ToFloat(uint16_t bits);
uint16_t FloatToF16(float value);
float F16ToFloat(uint16_t bits);

// `value` as `dtype` stores it (f32: rounded to float; f64 unchanged; bf16, f16 rounded).
double RoundToDType(DType dtype, double value);

// dst[i] = src[i] converted (float dtypes: f32, f64, bf16, f16; same dtype: a copy). Host memory.
void ConvertElements(DType dst_dtype, void* dst, DType src_dtype, const void* src, int64_t n);

inline bool IsFloat(DType t) {
  return t == DType::kF32 || t == DType::kF64 || t == DType::kBF16 || t == DType::kF16;
}
inline bool Is16Bit(DType t) { return t == DType::kBF16 || t == DType::kF16; }

}  // namespace deepnet
