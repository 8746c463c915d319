// Workspace: one growing device buffer for the scratch memory of the CUDA backend's ops.
#include "kernels/cuda/workspace.h"

#include <algorithm>

namespace deepnet::cuda {

void* Workspace::Get(size_t bytes) {
  if (bytes > buffer_.nbytes()) {
    // Grow by at least half again so that a sequence of slightly larger requests does not
    // reallocate every time.
    const size_t grown = std::max(bytes, buffer_.nbytes() + buffer_.nbytes() / 2);
    buffer_ = Tensor();  // free first: the old and new buffers need not both fit
    buffer_ = Tensor::Empty({static_cast<int64_t>(ScratchCarver::Round(grown))}, DType::kU8,
                            MemoryCategory::kWorkspace, Device::Cuda(device_));
  }
  return buffer_.raw_data();
}

}  // namespace deepnet::cuda
