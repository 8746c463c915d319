// Helpers of the CUDA tests (cuda_test_util.h).
#include "tests/cuda/cuda_test_util.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>

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

double RelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double max_error = 0.0, max_want = 1e-6;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(want[i])) return std::numeric_limits<double>::infinity();
    max_error = std::max(max_error, std::abs(got[i] - want[i]));
    max_want = std::max(max_want, std::abs(want[i]));
  }
  return max_error / max_want;
}

double Tolerance(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 2e-5;
    case DType::kBF16:
      return 2e-2;
    case DType::kF16:
      return 4e-3;
    default:
      return 1e-12;
  }
}

}  // namespace deepnet::cuda::testing
