#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>

#include "kernels/cuda/device.h"

#include <algorithm>

namespace deepnet::cuda {
namespace {

Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return OkStatus();
  cudaGetLastError();  // clear the sticky error so later calls are not poisoned
  return Unavailable(std::string(what) + ": " + cudaGetErrorString(err));
}

}  // namespace

StatusOr<int> DeviceCount() {
  int count = 0;
  RETURN_IF_ERROR(FromCuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  if (count == 0) return Unavailable("no CUDA device present");
  return count;
}

StatusOr<DeviceInfo> GetDeviceInfo(int index) {
  cudaDeviceProp prop{};
  RETURN_IF_ERROR(FromCuda(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties"));
  DeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.total_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  info.multiprocessors = prop.multiProcessorCount;
  // CUDA 13 dropped memoryClockRate from cudaDeviceProp; the attribute remains.
  int memory_clock_khz = 0;
  RETURN_IF_ERROR(
      FromCuda(cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, index),
               "cudaDeviceGetAttribute(cudaDevAttrMemoryClockRate)"));
  info.memory_clock_khz = memory_clock_khz;
  info.memory_bus_width_bits = prop.memoryBusWidth;
  return info;
}

Status InitDevice(int index) {
  ASSIGN_OR_RETURN(int count, DeviceCount());
  if (index < 0 || index >= count) {
    return InvalidArgument("CUDA device " + std::to_string(index) + " requested, " +
                           std::to_string(count) + " present");
  }
  RETURN_IF_ERROR(FromCuda(cudaSetDevice(index), "cudaSetDevice"));
  static std::mutex mu;
  static auto* allocators = new std::map<int, std::unique_ptr<CudaAllocator>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = (*allocators)[index];
  if (!slot) {
    slot = std::make_unique<CudaAllocator>(index);
    RegisterAllocator(Device::Cuda(index), slot.get());
  }
  return OkStatus();
}

void* CudaAllocator::RawAllocate(size_t bytes) {
  void* ptr = nullptr;
  if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return ptr;
}

void CudaAllocator::RawFree(void* ptr) { cudaFree(ptr); }

void* PinnedHostAllocator::RawAllocate(size_t bytes) {
  void* ptr = nullptr;
  if (cudaHostAlloc(&ptr, std::max<size_t>(bytes, 1), cudaHostAllocDefault) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return ptr;
}

void PinnedHostAllocator::RawFree(void* ptr) { cudaFreeHost(ptr); }

}  // namespace deepnet::cuda
