// Host-side error checks for the CUDA backend. Backend ops return void (kernels/backend.h), so a
// failing CUDA call inside an op is fatal, with the call and CUDA's message; discovery and set-up
// paths return Status instead (device.h, CudaBackend::Create).
#pragma once

#include <cuda_runtime_api.h>
#include <glog/logging.h>

// Fatal unless `expr` (a cudaError_t) is cudaSuccess.
#define DEEPNET_CUDA_CHECK(expr)                                          \
  do {                                                                    \
    const cudaError_t deepnet_cuda_error_ = (expr);                       \
    CHECK(deepnet_cuda_error_ == cudaSuccess)                             \
        << #expr << ": " << cudaGetErrorName(deepnet_cuda_error_) << ": " \
        << cudaGetErrorString(deepnet_cuda_error_);                       \
  } while (0)

// After a kernel launch: a bad launch configuration shows up here, not at the launch.
#define DEEPNET_CUDA_CHECK_LAUNCH() DEEPNET_CUDA_CHECK(cudaGetLastError())
