// TransferBuffers (see the header).
#include "parallel/transfer_buffers.h"

namespace deepnet {

Tensor TransferBuffers::Acquire(const Shape& shape, DType dtype, const Backend& backend) {
  return AcquireWith(shape, dtype, [&](int64_t numel) {
    return backend.Empty({numel}, dtype, MemoryCategory::kActivations);
  });
}

Tensor TransferBuffers::AcquireHostStaging(const Shape& shape, DType dtype,
                                           const Backend& backend) {
  return AcquireWith(shape, dtype,
                     [&](int64_t numel) { return backend.NewHostStaging({numel}, dtype); });
}

template <typename Make>
Tensor TransferBuffers::AcquireWith(const Shape& shape, DType dtype, Make make) {
  const int64_t numel = NumElements(shape);
  Tensor* best_fit = nullptr;   // the smallest free buffer that fits
  Tensor* too_small = nullptr;  // the largest free buffer that does not
  for (Tensor& buffer : buffers_) {
    if (buffer.storage_use_count() != 1 || buffer.dtype() != dtype) continue;  // in use
    if (buffer.numel() >= numel) {
      if (best_fit == nullptr || buffer.numel() < best_fit->numel()) best_fit = &buffer;
    } else if (too_small == nullptr || buffer.numel() > too_small->numel()) {
      too_small = &buffer;
    }
  }
  if (best_fit != nullptr) {
    ++reuses_;
    return best_fit->Slice(0, numel).Reshape(shape);
  }
  ++allocations_;
  Tensor fresh = make(numel);
  if (too_small != nullptr) {
    *too_small = fresh;  // frees the old buffer
  } else {
    buffers_.push_back(fresh);
  }
  return fresh.Reshape(shape);
}

int64_t TransferBuffers::pooled_bytes() const {
  int64_t bytes = 0;
  for (const Tensor& buffer : buffers_) bytes += static_cast<int64_t>(buffer.nbytes());
  return bytes;
}

}  // namespace deepnet
