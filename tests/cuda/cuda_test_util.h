// Helpers of the CUDA tests: the process's backend (or the reason there is none), moving values
// between host doubles and device tensors of any dtype, rounding as a dtype stores, and the error
// measure of the comparisons against the CPU oracle.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "runtime/tensor.h"

namespace deepnet::cuda::testing {

// The CUDA backend of this process (device 0), created on first use; null without a usable GPU,
// with the reason in *reason.
CudaBackend* GpuOrNull(std::string* reason);

// Declares `gpu` (CudaBackend*) or skips the test with the reason.
#define DEEPNET_GPU_OR_SKIP(gpu)                                                               \
  std::string gpu##_skip_reason;                                                               \
  ::deepnet::cuda::CudaBackend* gpu = ::deepnet::cuda::testing::GpuOrNull(&gpu##_skip_reason); \
  if (gpu == nullptr) GTEST_SKIP() << "no usable GPU: " << gpu##_skip_reason

// `value` as `dtype` stores it (f32, bf16, f16 round to nearest even; f64 unchanged).
double RoundTo(DType dtype, double value);
// n uniform values in [lo, hi), rounded to `dtype`.
std::vector<double> RandomValues(size_t n, uint32_t seed, double lo, double hi, DType dtype);

// A tensor of `dtype` on `device` holding `values` (converted; integers truncated).
Tensor MakeTensor(const Backend& backend, const std::vector<double>& values, const Shape& shape,
                  DType dtype);
// The elements of a host or device tensor as doubles.
std::vector<double> ToDoubles(const Backend& backend, const Tensor& t);

// max |got − want| / max(max |want|, 1e-6); +inf when a value is NaN or the sizes differ.
double RelativeError(const std::vector<double>& got, const std::vector<double>& want);

// Per-dtype bound on RelativeError against an f64 reference: f32 2e-5, bf16 2e-2, f16 4e-3.
double Tolerance(DType dtype);

inline const char* DTypeLabel(DType dtype) {
  return dtype == DType::kF32 ? "f32" : dtype == DType::kBF16 ? "bf16" : "f16";
}

}  // namespace deepnet::cuda::testing

namespace deepnet {
// GoogleTest prints parameters with it: "bf16" instead of the enum's byte.
inline void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }
}  // namespace deepnet
