// Choosing a backend at run time: the one place that maps a name ("cpu", "cuda", "strict") or a
// config's parallel.backend to a Backend, opens the GPU a rank uses and describes the device in
// one line for logs and the rank grid.
#pragma once

#include <string>
#include <string_view>

#include "kernels/backend.h"
#include "runtime/status.h"

namespace deepnet {

enum class BackendKind { kCpu, kCuda, kStrict };

// "cpu", "cuda", "strict" (any case). InvalidArgument naming the choices otherwise.
StatusOr<BackendKind> ParseBackendKind(std::string_view name);
std::string_view BackendKindName(BackendKind kind);
// Whether this build has the CUDA backend (DEEPNET_CUDA).
bool CudaBackendBuilt();

// The process's backend of `kind`, created on first use and kept until exit. CUDA opens GPU
// `local_rank` modulo the node's GPU count (one rank per GPU when there are enough). Fails at
// once, with the host and the CUDA error, when no GPU can be used or the build has no CUDA.
StatusOr<const Backend*> OpenBackend(BackendKind kind, int local_rank = 0);

// One line about the device a backend computes on, e.g. "cuda:0 NVIDIA H200 (139.8 GiB, sm_90)",
// "cpu (8 threads)", "strict (CPU-emulated device)".
std::string DescribeDevice(const Backend& backend);

// Blocks until the backend has finished the work enqueued so far (a no-op on synchronous
// backends); for timing.
void SynchronizeBackend(const Backend& backend);

// The machine's host name, for messages and the rank grid.
std::string HostName();

}  // namespace deepnet
