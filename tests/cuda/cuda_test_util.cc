// Helpers of the CUDA tests (cuda_test_util.h).
#include "tests/cuda/cuda_test_util.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include "kernels/cuda/device.h"

namespace deepnet::cuda::testing {

CudaBackend* GpuOrNull(std::string* reason) {
  static std::string* why_not = new std::string();
  static CudaBackend* backend = [] {
    StatusOr<std::unique_ptr<CudaBackend>> created = CudaBackend::Create();
    if (!created.ok()) {
      *why_not = created.status().ToString();
      return static_cast<CudaBackend*>(nullptr);
    }
    return std::move(created).value().release();  // lives until exit, as the CUDA context does
  }();
  if (backend == nullptr) *reason = *why_not;
  return backend;
}

double RoundTo(DType dtype, double value) {
  const float f = static_cast<float>(value);
  switch (dtype) {
    case DType::kF32:
      return f;
    case DType::kBF16:
      return __bfloat162float(__float2bfloat16_rn(f));
    case DType::kF16:
      return __half2float(__float2half_rn(f));
    default:
      return value;
  }
}

std::vector<double> RandomValues(size_t n, uint32_t seed, double lo, double hi, DType dtype) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(lo, hi);
  std::vector<double> values(n);
  for (double& v : values) v = RoundTo(dtype, uniform(rng));
  return values;
}

Tensor MakeTensor(const Backend& backend, const std::vector<double>& values, const Shape& shape,
                  DType dtype) {
  Tensor host = Tensor::Empty(shape, dtype, MemoryCategory::kOther);
  CHECK_EQ(static_cast<size_t>(host.numel()), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const float f = static_cast<float>(values[i]);
    switch (dtype) {
      case DType::kF32:
        host.data<float>()[i] = f;
        break;
      case DType::kF64:
        host.data<double>()[i] = values[i];
        break;
      case DType::kI32:
        host.data<int32_t>()[i] = static_cast<int32_t>(values[i]);
        break;
      case DType::kU8:
        host.data<uint8_t>()[i] = static_cast<uint8_t>(values[i]);
        break;
      case DType::kBF16:
        static_cast<__nv_bfloat16*>(host.raw_data())[i] = __float2bfloat16_rn(f);
        break;
      case DType::kF16:
        static_cast<__half*>(host.raw_data())[i] = __float2half_rn(f);
        break;
    }
  }
  if (backend.device().is_cpu()) return host;
  Tensor device = backend.Empty(shape, dtype, MemoryCategory::kOther);
  backend.Copy(device, host);
  return device;
}

std::vector<double> ToDoubles(const Backend& backend, const Tensor& t) {
  Tensor host = t;
  if (!t.device().is_cpu()) {
    host = Tensor::Empty(t.shape(), t.dtype(), MemoryCategory::kOther);
    backend.Copy(host, t);
  }
  std::vector<double> values(static_cast<size_t>(host.numel()));
  for (size_t i = 0; i < values.size(); ++i) {
    switch (host.dtype()) {
      case DType::kF32:
        values[i] = host.data<float>()[i];
        break;
      case DType::kF64:
        values[i] = host.data<double>()[i];
        break;
      case DType::kI32:
        values[i] = host.data<int32_t>()[i];
        break;
      case DType::kU8:
        values[i] = host.data<uint8_t>()[i];
        break;
      case DType::kBF16:
        values[i] = __bfloat162float(static_cast<const __nv_bfloat16*>(host.raw_data())[i]);
        break;
      case DType::kF16:
        values[i] = __half2float(static_cast<const __half*>(host.raw_data())[i]);
        break;
    }
  }
  return values;
}

double UnitRoundoff(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 0x1p-24;
    case DType::kBF16:
      return 0x1p-8;
    case DType::kF16:
      return 0x1p-11;
    case DType::kF64:
      return 0x1p-53;
    default:
      return 0.0;
  }
}

Tol DefaultTol(DType dtype, double scale) {
  constexpr double kF32Atol = 1e-5;  // per unit of `scale`
  switch (dtype) {
    case DType::kF32:
      return {.atol = kF32Atol * scale, .rtol = 2e-5};
    case DType::kBF16:
      return {.atol = kF32Atol * scale, .rtol = 2e-2};
    case DType::kF16:
      return {.atol = kF32Atol * scale + 0x1p-24, .rtol = 4e-3};
    case DType::kF64:
      return {.atol = 1e-12 * scale, .rtol = 1e-12};
    default:
      return {.atol = 0.0, .rtol = 0.0};
  }
}

::testing::AssertionResult AllClose(const std::vector<double>& got, const std::vector<double>& want,
                                    double atol, double rtol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: got " << got.size() << " elements, want " << want.size();
  }
  constexpr int kListed = 5;
  struct Failure {
    size_t index;
    double excess;  // |got − want| / bound; +inf for NaN or a mismatched infinity
  };
  std::vector<Failure> first;
  Failure worst{0, 0.0};
  size_t failures = 0;
  double max_abs = 0.0;
  auto bound_at = [&](size_t i) { return atol + rtol * std::abs(want[i]); };
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] == want[i]) continue;  // also equal infinities
    const bool finite = std::isfinite(got[i]) && std::isfinite(want[i]);
    const double diff = std::abs(got[i] - want[i]);
    const double bound = bound_at(i);
    if (finite) {
      max_abs = std::max(max_abs, diff);
      if (diff <= bound) continue;
    }
    const double excess =
        finite && bound > 0.0 ? diff / bound : std::numeric_limits<double>::infinity();
    ++failures;
    if (first.size() < kListed) first.push_back({i, excess});
    if (failures == 1 || excess > worst.excess) worst = {i, excess};
  }
  if (failures == 0) return ::testing::AssertionSuccess();

  std::ostringstream message;
  message << std::setprecision(9) << failures << " of " << got.size()
          << " elements outside |got − want| ≤ atol + rtol·|want| (atol " << atol << ", rtol "
          << rtol << "; max |got − want| " << max_abs << ")";
  auto describe = [&](const Failure& f) {
    message << "\n  [" << f.index << "] got " << got[f.index] << ", want " << want[f.index]
            << ", |diff| " << std::abs(got[f.index] - want[f.index]) << " > bound "
            << bound_at(f.index) << " (" << std::setprecision(3) << f.excess << "×)"
            << std::setprecision(9);
  };
  message << "\n first failing:";
  for (const Failure& f : first) describe(f);
  if (std::none_of(first.begin(), first.end(),
                   [&](const Failure& f) { return f.index == worst.index; })) {
    message << "\n worst:";
    describe(worst);
  }
  return ::testing::AssertionFailure() << message.str();
}

}  // namespace deepnet::cuda::testing
