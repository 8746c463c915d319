// The CUDA device as the rest of deepnet sees it: discovery that never crashes on a machine
// without a GPU or driver, and a device allocator that feeds the same memory accounting as the
// host one. Plain C++ header: callers need no CUDA headers.
#pragma once

#include <string>

#include "runtime/allocator.h"
#include "runtime/status.h"

namespace deepnet::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  int64_t total_memory_bytes = 0;
  int multiprocessors = 0;
  int64_t memory_clock_khz = 0;  // peak memory clock
  int memory_bus_width_bits = 0;

  // Peak DRAM bandwidth in bytes/s: 2 transfers per clock (DDR) × clock × bus width.
  double peak_memory_bytes_per_second() const {
    return 2.0 * static_cast<double>(memory_clock_khz) * 1e3 * memory_bus_width_bits / 8.0;
  }
};

// Number of usable GPUs. Any CUDA error (no driver, no device) is reported as a Status whose
// message says why, and the sticky CUDA error is cleared, so callers can fall back or skip.
StatusOr<int> DeviceCount();
StatusOr<DeviceInfo> GetDeviceInfo(int index);

// Selects `index` for this thread and registers its allocator with GetAllocator().
Status InitDevice(int index);

// Page-locked host memory (cudaHostAlloc) for staging buffers: host tensors (Device::Cpu()) whose
// copies to and from the GPU run at full bandwidth. Its own accounting, not the host allocator's.
class PinnedHostAllocator final : public Allocator {
 public:
  Device device() const override { return Device::Cpu(); }

 protected:
  void* RawAllocate(size_t bytes) override;
  void RawFree(void* ptr) override;
};

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index) {}
  Device device() const override { return Device::Cuda(index_); }

 protected:
  void* RawAllocate(size_t bytes) override;
  void RawFree(void* ptr) override;

 private:
  int index_;
};

}  // namespace deepnet::cuda
