#include "runtime/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <map>
#include <sstream>

namespace deepnet {

std::string_view MemoryCategoryName(MemoryCategory c) {
  switch (c) {
    case MemoryCategory::kParameters:
      return "parameters";
    case MemoryCategory::kGradients:
      return "gradients";
    case MemoryCategory::kOptimizerState:
      return "optimizer_state";
    case MemoryCategory::kActivations:
      return "activations";
    case MemoryCategory::kWorkspace:
      return "workspace";
    case MemoryCategory::kOther:
      return "other";
  }
  return "unknown";
}

std::string MemoryStats::ToString() const {
  std::ostringstream os;
  os.precision(2);
  os << std::fixed;
  constexpr double kMiB = 1024.0 * 1024.0;
  for (int i = 0; i < kNumMemoryCategories; ++i) {
    os << MemoryCategoryName(static_cast<MemoryCategory>(i)) << "=" << current[i] / kMiB << "/"
       << peak[i] / kMiB << " ";
  }
  os << "total=" << total_current / kMiB << "/" << total_peak / kMiB << " MiB (current/peak)";
  return os.str();
}

StatusOr<void*> Allocator::Allocate(size_t bytes, MemoryCategory category) {
  const int c = static_cast<int>(category);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (limit_bytes_ > 0 && stats_.total_current + static_cast<int64_t>(bytes) > limit_bytes_) {
      return ResourceExhausted("allocating " + std::to_string(bytes) + " bytes of " +
                               std::string(MemoryCategoryName(category)) + " on " +
                               device().ToString() + " exceeds the limit of " +
                               std::to_string(limit_bytes_) + " bytes; live: " + stats_.ToString());
    }
  }
  void* ptr = bytes == 0 ? nullptr : RawAllocate(bytes);
  if (bytes != 0 && ptr == nullptr) {
    return ResourceExhausted("out of memory allocating " + std::to_string(bytes) + " bytes of " +
                             std::string(MemoryCategoryName(category)) + " on " +
                             device().ToString() + "; live: " + stats().ToString());
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.current[c] += static_cast<int64_t>(bytes);
  stats_.peak[c] = std::max(stats_.peak[c], stats_.current[c]);
  stats_.total_current += static_cast<int64_t>(bytes);
  stats_.total_peak = std::max(stats_.total_peak, stats_.total_current);
  ++stats_.num_allocations;
  return ptr;
}

void Allocator::Free(void* ptr, size_t bytes, MemoryCategory category) {
  if (ptr != nullptr) RawFree(ptr);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.current[static_cast<int>(category)] -= static_cast<int64_t>(bytes);
  stats_.total_current -= static_cast<int64_t>(bytes);
}

MemoryStats Allocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Allocator::ResetPeak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak = stats_.current;
  stats_.total_peak = stats_.total_current;
}

void Allocator::set_limit_bytes(int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit_bytes_ = limit;
}

void* CpuAllocator::RawAllocate(size_t bytes) {
  constexpr size_t kAlign = 64;
  return std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
}

void CpuAllocator::RawFree(void* ptr) { std::free(ptr); }

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::pair<int, int>, Allocator*> by_device;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed: tensors may outlive main
  return *registry;
}

}  // namespace

Allocator& GetAllocator(Device device) {
  if (device.is_cpu()) {
    static CpuAllocator* cpu = new CpuAllocator();
    return *cpu;
  }
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_device.find({static_cast<int>(device.kind), device.index});
  CHECK(it != r.by_device.end()) << "no allocator registered for " << device.ToString()
                                 << " (is the backend initialised?)";
  return *it->second;
}

void RegisterAllocator(Device device, Allocator* allocator) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.by_device[{static_cast<int>(device.kind), device.index}] = allocator;
}

void KeepHostTensorsInHeap() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);  // larger blocks still get their own mapping
  mallopt(M_TRIM_THRESHOLD, 1 << 30);    // shrink the heap only past 1 GiB of free space
}

}  // namespace deepnet
