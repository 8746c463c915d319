// TransferBuffers: the receive buffers of one pipeline engine, recycled across micro-batches and
// steps.
//
// Every received activation or gradient lands in a buffer from here. A buffer is free again once
// no tensor outside the pool references it (the pass that consumed it, and any checkpoint that
// kept it, have let go), so in steady state a stage receives without allocating: the pool grows
// to the most transfers alive at once (at most p − r activations under 1F1B, plus their
// gradients) and stays there. Micro-batch shapes change from step to step (padded lengths), so a
// buffer serves any request that fits its capacity; when none fits, the largest free buffer too
// small for it is replaced by one of the requested size, so the pool never holds more buffers
// than were ever in use at once. Buffers are charged to kActivations while pooled (host staging
// buffers to kWorkspace of the staging allocator): the stage really holds that memory.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "runtime/tensor.h"

namespace deepnet {

class TransferBuffers {
 public:
  // A tensor of `shape` over a pooled buffer (uninitialised contents) on `backend`'s device.
  Tensor Acquire(const Shape& shape, DType dtype, const Backend& backend);
  // The same over host staging buffers for `backend` (Backend::NewHostStaging: pinned on CUDA).
  Tensor AcquireHostStaging(const Shape& shape, DType dtype, const Backend& backend);

  int64_t allocations() const { return allocations_; }  // fresh buffers made so far
  int64_t reuses() const { return reuses_; }            // requests served from the pool
  size_t pooled() const { return buffers_.size(); }
  int64_t pooled_bytes() const;

 private:
  // `make(numel)` makes a fresh flat buffer when none in the pool fits.
  template <typename Make>
  Tensor AcquireWith(const Shape& shape, DType dtype, Make make);

  std::vector<Tensor> buffers_;  // flat (numel = capacity)
  int64_t allocations_ = 0;
  int64_t reuses_ = 0;
};

}  // namespace deepnet
