// Helpers of the CUDA tests: the process's backend (or the reason there is none), moving values
// between host doubles and device tensors of any dtype, rounding as a dtype stores, and the
// per-element comparison against the CPU oracle (AllClose).
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

// A per-element bound: element i passes when |got[i] − want[i]| ≤ atol + rtol·|want[i]|.
struct Tol {
  double atol = 0.0;
  double rtol = 0.0;
};

// Unit roundoff of a floating dtype (half its epsilon): f32 2^-24, bf16 2^-8, f16 2^-11; 0 else.
double UnitRoundoff(DType dtype);

// The bound for a GPU result stored as `dtype`, computed in f32 from the same inputs as the f64
// reference, whose terms (the products of a sum, the parts of a difference) are about `scale` in
// magnitude:
//   rtol: f32 2e-5 (sums in another order), bf16 2e-2, f16 4e-3 (5 to 8 units of the store's
//         rounding, which is relative to the element itself);
//   atol: 1e-5·scale for every dtype: the math is f32, so an element that cancels to near zero
//         carries the f32 rounding of its terms, whatever dtype stores it; f16 adds 2^-24 (one
//         subnormal step: below 2^-14 its rounding is absolute). f64 1e-12; integers exact.
// Kernels that round intermediates to 16 bits (attention's probabilities) need a larger atol.
Tol DefaultTol(DType dtype, double scale = 1.0);

// Every element within atol + rtol·|want| (equal values, infinities included, always pass; NaN
// never does). The failure message counts the failing elements and lists the first few and the
// worst with got, want, |got − want| and the bound.
::testing::AssertionResult AllClose(const std::vector<double>& got, const std::vector<double>& want,
                                    double atol, double rtol);
inline ::testing::AssertionResult AllClose(const std::vector<double>& got,
                                           const std::vector<double>& want, Tol tol) {
  return AllClose(got, want, tol.atol, tol.rtol);
}

inline const char* DTypeLabel(DType dtype) {
  return dtype == DType::kF32 ? "f32" : dtype == DType::kBF16 ? "bf16" : "f16";
}

}  // namespace deepnet::cuda::testing

namespace deepnet {
// GoogleTest prints parameters with it: "bf16" instead of the enum's byte.
inline void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }
}  // namespace deepnet
