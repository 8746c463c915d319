#include "kernels/strict/strict_allocator.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace deepnet {
namespace {

// The tag added to every address. x86-64: bit 62 makes an address non-canonical under both 4- and
// 5-level paging (bits 63..47, resp. 63..56, must all be equal), so a load faults. AArch64 ignores
// the top byte (TBI), so bit 62 would be readable there; bit 55 selects the kernel half instead.
// User-space addresses never have the bit set, and view offsets are far too small to carry into it.
#if defined(__aarch64__)
constexpr uintptr_t kTag = uintptr_t{1} << 55;
#else
constexpr uintptr_t kTag = uintptr_t{1} << 62;
#endif
// The tag bit and every bit above it: a tagged pointer has exactly kTag there.
constexpr uintptr_t kHighBits = ~(kTag - 1);

}  // namespace

bool IsStrictDevicePointer(const void* ptr) {
  return (reinterpret_cast<uintptr_t>(ptr) & kHighBits) == kTag;
}

void* StrictHostAddress(const void* device_ptr) {
  if (device_ptr == nullptr) return nullptr;
  CHECK(IsStrictDevicePointer(device_ptr))
      << "pointer " << device_ptr << " is not strict device memory (a host pointer?)";
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(device_ptr) - kTag);
}

void* StrictAllocator::RawAllocate(size_t bytes) {
  constexpr size_t kAlign = 64;
  // aligned_alloc wants a multiple of the alignment; at least one block, so 0 bytes works too.
  const size_t rounded = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  void* ptr = std::aligned_alloc(kAlign, rounded);
  if (ptr == nullptr) return nullptr;  // Allocator::Allocate reports kResourceExhausted
  const auto address = reinterpret_cast<uintptr_t>(ptr);
  CHECK_EQ(address & kHighBits, 0u) << "host address " << ptr << " already uses the strict tag bit";
  return reinterpret_cast<void*>(address + kTag);
}

void StrictAllocator::RawFree(void* ptr) { std::free(StrictHostAddress(ptr)); }

}  // namespace deepnet
