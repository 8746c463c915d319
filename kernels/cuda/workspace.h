// Workspace: the scratch memory of the CUDA backend's ops (partial sums, sort buffers).
//
// One device buffer, grown on demand and charged to MemoryCategory::kWorkspace. Ops use it only
// through their stream: a pointer from Get() is valid for the work an op enqueues right after,
// and the next op's Get() may hand out the same bytes (stream order keeps the uses apart).
// Growing frees the old buffer with cudaFree, which waits for the device, so no enqueued kernel
// can still be using it.
#pragma once

#include <cstddef>

#include "runtime/tensor.h"

namespace deepnet::cuda {

class Workspace {
 public:
  explicit Workspace(int device) : device_(device) {}

  // At least `bytes` of device memory, 256-byte aligned.
  void* Get(size_t bytes);
  size_t capacity() const { return buffer_.nbytes(); }

 private:
  int device_;
  Tensor buffer_;
};

// Carves aligned pieces out of one workspace request: Take<float>(n), Take<int>(n)...
class ScratchCarver {
 public:
  explicit ScratchCarver(void* base) : next_(static_cast<char*>(base)) {}
  // Bytes needed for a sequence of pieces of these sizes (each rounded up to 256 bytes).
  static size_t Round(size_t bytes) { return (bytes + 255) / 256 * 256; }
  template <typename T>
  T* Take(size_t count) {
    T* piece = reinterpret_cast<T*>(next_);
    next_ += Round(count * sizeof(T));
    return piece;
  }

 private:
  char* next_;
};

}  // namespace deepnet::cuda
