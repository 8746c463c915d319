// Device memory with exact accounting.
//
// Every byte deepnet allocates is charged to a device and a category. The profiler, the
// partitioner's memory model and the activation-checkpointing report read these numbers, so they
// count requested bytes exactly (no rounding, no caching slack).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace deepnet {

enum class MemoryCategory : uint8_t {
  kParameters,
  kGradients,
  kOptimizerState,
  kActivations,
  kWorkspace,
  kOther,
};
inline constexpr int kNumMemoryCategories = 6;
std::string_view MemoryCategoryName(MemoryCategory c);

struct MemoryStats {
  std::array<int64_t, kNumMemoryCategories> current{};  // bytes live now, per category
  std::array<int64_t, kNumMemoryCategories> peak{};     // high-water mark, per category
  int64_t total_current = 0;                            // all categories
  int64_t total_peak = 0;  // high-water mark of the sum (not the sum of peaks)
  int64_t num_allocations = 0;

  int64_t current_of(MemoryCategory c) const { return current[static_cast<int>(c)]; }
  int64_t peak_of(MemoryCategory c) const { return peak[static_cast<int>(c)]; }
  std::string ToString() const;  // one line, MiB per category
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;

  // Allocates `bytes` (aligned to 64) charged to `category`. Fails with kResourceExhausted when
  // the device or the configured limit has no room; the message gives what was live.
  StatusOr<void*> Allocate(size_t bytes, MemoryCategory category);
  void Free(void* ptr, size_t bytes, MemoryCategory category);

  MemoryStats stats() const;
  // Starts a new peak measurement from the current live bytes.
  void ResetPeak();
  // 0 = no limit. Lets tests and the profiler emulate a smaller device.
  void set_limit_bytes(int64_t limit);

 protected:
  virtual void* RawAllocate(size_t bytes) = 0;
  virtual void RawFree(void* ptr) = 0;

 private:
  mutable std::mutex mu_;
  MemoryStats stats_;
  int64_t limit_bytes_ = 0;
};

// Host memory (64-byte aligned, suitable for SIMD). Page-locked host memory for device transfers
// comes from the CUDA backend's own allocator (Backend::NewHostStaging).
class CpuAllocator final : public Allocator {
 public:
  Device device() const override { return Device::Cpu(); }

 protected:
  void* RawAllocate(size_t bytes) override;
  void RawFree(void* ptr) override;
};

// The allocator that owns memory of `device`. The CPU allocator always exists; a backend
// registers its own allocator for its devices at start-up.
Allocator& GetAllocator(Device device);
void RegisterAllocator(Device device, Allocator* allocator);

// Keeps freed host tensors in the process heap for the next step instead of returning each one
// to the kernel: a training step frees and reallocates the same large activations every time,
// and by default glibc serves them with mmap/munmap, paying page faults and zeroing pages again
// on every step (about 3% of a CPU training step). Call once at start-up, from a program's main.
void KeepHostTensorsInHeap();

}  // namespace deepnet
