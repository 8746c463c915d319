// StrictAllocator: memory of the strict test device (Device::Strict()).
//
// The memory is ordinary host memory, but the pointers handed out are poisoned: the real address
// with a tag bit set that makes it non-canonical, so a host dereference of a strict tensor's data
// crashes at once (SIGSEGV) instead of silently reading what on a GPU would be device memory.
// Pointer arithmetic on a tagged pointer (views: base + offset) keeps the tag. Only the strict
// backend turns a tagged pointer back into an address, with StrictHostAddress.
#pragma once

#include <cstddef>

#include "runtime/allocator.h"

namespace deepnet {

class StrictAllocator final : public Allocator {
 public:
  Device device() const override { return Device::Strict(); }

 protected:
  void* RawAllocate(size_t bytes) override;
  void RawFree(void* ptr) override;
};

// The host address behind a strict device pointer (a tensor's raw_data(), views included); null
// stays null. Fatal when `device_ptr` does not carry the strict tag (e.g. a host pointer).
void* StrictHostAddress(const void* device_ptr);

// Whether `ptr` carries the strict tag (a pointer into strict device memory).
bool IsStrictDevicePointer(const void* ptr);

}  // namespace deepnet
