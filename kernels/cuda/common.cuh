// Device-side helpers shared by the CUDA backend's kernels (.cu files only): element types and
// their float conversions, aligned vectors, warp reductions, launch arithmetic and dispatch from a
// runtime DType to a kernel template.
//
// Convention of every kernel: tensors hold T ∈ {float, bf16, f16}; arithmetic is in float
// (statistics, sums, softmax) and results are rounded to T once, on store.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/types.h"
#include "runtime/dtype.h"

namespace deepnet::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(f16 x) { return __half2float(x); }

// Rounds to nearest even.
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 FromFloat<bf16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ f16 FromFloat<f16>(float x) {
  return __float2half_rn(x);
}

// N elements moved as one aligned access (16 bytes for the widest vectors).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

// Elements of T in one 16-byte access.
template <typename T>
constexpr int kVec16 = 16 / sizeof(T);

__device__ __forceinline__ bool IsAligned(const void* p, int bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}
inline bool IsAlignedHost(const void* p, int bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 floats. Warps are added in warp order: the same bits on every run.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over n items: enough to fill any current GPU, no more.
inline unsigned GridFor(int64_t n, int threads) {
  constexpr int64_t kMaxBlocks = 65536;
  const int64_t blocks = CeilDiv(n, threads);
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// Calls fn.template operator()<T>() with T the element type of `dtype` (f32, bf16, f16).
template <typename Fn>
void DispatchFloat(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::kF32:
      fn.template operator()<float>();
      break;
    case DType::kBF16:
      fn.template operator()<bf16>();
      break;
    case DType::kF16:
      fn.template operator()<f16>();
      break;
    default:
      LOG(FATAL) << "CUDA backend: " << op << " does not support " << DTypeName(dtype)
                 << " (f32, bf16, f16 only)";
  }
}

__device__ __forceinline__ float LoadFlex(const FlexPtr& p, int64_t i) {
  switch (p.dtype) {
    case DType::kBF16:
      return ToFloat(static_cast<const bf16*>(p.ptr)[i]);
    case DType::kF16:
      return ToFloat(static_cast<const f16*>(p.ptr)[i]);
    default:
      return static_cast<const float*>(p.ptr)[i];
  }
}

__device__ __forceinline__ void StoreFlex(const FlexPtr& p, int64_t i, float value) {
  switch (p.dtype) {
    case DType::kBF16:
      static_cast<bf16*>(p.ptr)[i] = FromFloat<bf16>(value);
      break;
    case DType::kF16:
      static_cast<f16*>(p.ptr)[i] = FromFloat<f16>(value);
      break;
    default:
      static_cast<float*>(p.ptr)[i] = value;
  }
}

}  // namespace deepnet::cuda
