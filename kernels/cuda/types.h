// Plain C++ types shared by the CUDA backend's host code and its kernels.
#pragma once

#include "runtime/dtype.h"

namespace deepnet::cuda {

// A small vector of floats (LayerNorm weights, row statistics, parameter gradients) stored as f32
// or as a 16-bit type: the dtype is a runtime flag, uniform across a launch, so the kernels need
// no template per combination of storage types.
struct FlexPtr {
  void* ptr = nullptr;
  DType dtype = DType::kF32;
};

}  // namespace deepnet::cuda
