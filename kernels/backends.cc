// Backend selection (see the header). CUDA parts compile only in CUDA builds.
#include "kernels/backends.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

#include "kernels/strict/strict_backend.h"
#ifdef DEEPNET_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device.h"
#endif

namespace deepnet {
namespace {

#ifdef DEEPNET_HAVE_CUDA
StatusOr<const Backend*> OpenCuda(int local_rank) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<cuda::CudaBackend>> opened;
  const std::string where = "cuda on host " + HostName();
  StatusOr<int> count = cuda::DeviceCount();
  if (!count.ok()) return Unavailable(where + ": no usable GPU: " + count.status().message());
  if (*count <= 0) return Unavailable(where + ": no GPU found");
  const int device = std::max(0, local_rank) % *count;
  std::lock_guard<std::mutex> lock(mu);
  auto it = opened.find(device);
  if (it != opened.end()) return it->second.get();
  cuda::CudaBackendOptions options;
  options.device = device;
  StatusOr<std::unique_ptr<cuda::CudaBackend>> backend = cuda::CudaBackend::Create(options);
  if (!backend.ok()) {
    return Unavailable(where + ": GPU " + std::to_string(device) +
                       " cannot be used: " + backend.status().message());
  }
  const Backend* result = backend->get();
  opened.emplace(device, std::move(*backend));
  return result;
}
#endif

}  // namespace

StatusOr<BackendKind> ParseBackendKind(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "cpu") return BackendKind::kCpu;
  if (lower == "cuda" || lower == "gpu") return BackendKind::kCuda;
  if (lower == "strict") return BackendKind::kStrict;
  return InvalidArgument("unknown device \"" + std::string(name) +
                         "\": choose cpu, cuda or strict (the CPU-run test device)");
}

std::string_view BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kCpu:
      return "cpu";
    case BackendKind::kCuda:
      return "cuda";
    case BackendKind::kStrict:
      return "strict";
  }
  return "?";
}

bool CudaBackendBuilt() {
#ifdef DEEPNET_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

StatusOr<const Backend*> OpenBackend(BackendKind kind, int local_rank) {
  switch (kind) {
    case BackendKind::kCpu:
      return &CpuBackend();
    case BackendKind::kStrict:
      return &StrictBackend();
    case BackendKind::kCuda:
#ifdef DEEPNET_HAVE_CUDA
      return OpenCuda(local_rank);
#else
      (void)local_rank;
      return Unavailable("cuda on host " + HostName() +
                         ": this deepnet was built without CUDA (configure where nvcc is found, "
                         "or with -DCMAKE_CUDA_COMPILER=/path/to/nvcc)");
#endif
  }
  return Internal("unknown backend kind");
}

std::string DescribeDevice(const Backend& backend) {
  const Device device = backend.device();
  switch (device.kind) {
    case DeviceKind::kCpu:
      return "cpu (" + std::to_string(omp_get_max_threads()) + " threads)";
    case DeviceKind::kStrict:
      return "strict (CPU-emulated device)";
    case DeviceKind::kCuda: {
#ifdef DEEPNET_HAVE_CUDA
      StatusOr<cuda::DeviceInfo> info = cuda::GetDeviceInfo(device.index);
      if (info.ok()) {
        char memory[32];
        std::snprintf(memory, sizeof(memory), "%.1f GiB",
                      static_cast<double>(info->total_memory_bytes) / (1 << 30));
        return device.ToString() + " " + info->name + " (" + memory + ", sm_" +
               std::to_string(info->compute_major) + std::to_string(info->compute_minor) + ")";
      }
#endif
      return device.ToString();
    }
  }
  return device.ToString();
}

void SynchronizeBackend(const Backend& backend) {
#ifdef DEEPNET_HAVE_CUDA
  if (const auto* gpu = dynamic_cast<const cuda::CudaBackend*>(&backend)) gpu->Synchronize();
#else
  (void)backend;
#endif
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

}  // namespace deepnet
