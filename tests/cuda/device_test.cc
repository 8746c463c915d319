// CUDA backend tests. Each skips with the reason when no usable GPU is present (no driver, no
// device), so the suite passes on CPU-only machines and runs for real where a GPU is lent.
#include "kernels/cuda/device.h"

#include <gtest/gtest.h>

#include "runtime/tensor.h"

namespace deepnet::cuda {
namespace {

#define SKIP_WITHOUT_GPU()                                                \
  do {                                                                    \
    StatusOr<int> count = DeviceCount();                                  \
    if (!count.ok()) GTEST_SKIP() << "no usable GPU: " << count.status(); \
  } while (0)

TEST(CudaDeviceTest, DiscoveryNeverCrashes) {
  StatusOr<int> count = DeviceCount();
  if (!count.ok()) {
    EXPECT_EQ(count.status().code(), StatusCode::kUnavailable);
    EXPECT_FALSE(count.status().message().empty());
  } else {
    EXPECT_GE(*count, 1);
  }
}

TEST(CudaDeviceTest, AllocatorAccountsDeviceMemory) {
  SKIP_WITHOUT_GPU();
  ASSERT_TRUE(InitDevice(0).ok());
  Allocator& gpu = GetAllocator(Device::Cuda(0));
  const int64_t before = gpu.stats().current_of(MemoryCategory::kActivations);
  {
    StatusOr<Tensor> t =
        Tensor::Allocate({1024, 1024}, DType::kBF16, MemoryCategory::kActivations, Device::Cuda(0));
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(gpu.stats().current_of(MemoryCategory::kActivations) - before, 2 << 20);
  }
  EXPECT_EQ(gpu.stats().current_of(MemoryCategory::kActivations), before);
}

}  // namespace
}  // namespace deepnet::cuda
